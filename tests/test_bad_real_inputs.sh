#!/usr/bin/env bash
# Real-model inputs that must be refused cleanly (exit 2, one "error:" line naming the file and
# nothing else on stderr, nothing written): a tokenizer.json with invalid UTF-8, one without
# its "model", a dataset line with non-UTF-8 bytes, a tokenizer whose vocabulary does not fit
# the model's, and output paths that cannot be written.
# The tiny model comes from `test_chat_dataset --make-model` beside the denserl binary.
# Usage: test_bad_real_inputs.sh path/to/denserl
set -u
BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPER=$(dirname "$BIN")/test_chat_dataset
[ -x "$HELPER" ] || { echo "SKIP: $HELPER not built (it writes the test model)"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
# refused NAME PATTERN cmd...: exit 2, one error line matching PATTERN, no out file
refused() {
    local name=$1 pat=$2
    shift 2
    rm -f "$W/out.jsonl"
    "$@" >"$W/stdout" 2>"$W/stderr"
    local rc=$? err
    err=$(grep -c "^error:" "$W/stderr")
    if [ $rc = 2 ] && [ "$err" = 1 ] && [ "$(wc -l <"$W/stderr")" = 1 ] && grep -q -- "$pat" "$W/stderr" && [ ! -e "$W/out.jsonl" ]; then
        echo "PASS $name: $(grep '^error:' "$W/stderr")"
    else
        echo "FAIL $name: exit $rc, stderr: $(head -c 300 "$W/stderr")"
        fail=1
    fi
}
M=$W/model
"$HELPER" --make-model "$M" "$ROOT/tests/fixtures/bpe/qwen2" >/dev/null || { echo "FAIL make model"; exit 1; }
run_gen() { "$BIN" generate --model "$1" --prompt "What is 2+2?" --max-new-tokens 4 --device cpu --out "$W/out.jsonl"; }

# tokenizer.json with an invalid UTF-8 byte inside a string
cp -r "$M" "$W/badutf"
python3 - "$W/badutf/tokenizer.json" <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
i = b.index(b'"vocab"')
open(p, "wb").write(b[:i + 1] + b"\xff" + b[i + 1:])
PY
refused "tokenizer.json with invalid UTF-8" "tokenizer.json" run_gen "$W/badutf"

# tokenizer.json without its model
cp -r "$M" "$W/nomodel"
python3 - "$W/nomodel/tokenizer.json" <<'PY'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
del j["model"]
json.dump(j, open(p, "w"))
PY
refused "tokenizer.json without model" "tokenizer.json" run_gen "$W/nomodel"

# a dataset line with non-UTF-8 bytes (no bad line tolerated)
D=$W/data.jsonl
printf '{"question": "What is 1+1?", "answer": "#### 2"}\n{"question": "bad \xfe\xff bytes", "answer": "#### 3"}\n' >"$D"
refused "dataset line with non-UTF-8 bytes" "data.jsonl:2" \
    "$BIN" eval --model "$M" --data "$D" --task gsm8k --max-new-tokens 4 --device cpu \
    --max-bad-fraction 0 --out "$W/out.jsonl"

# a tokenizer with more tokens than the model has embedding rows
cp -r "$M" "$W/mismatch"
python3 - "$W/mismatch/tokenizer.json" <<'PY'
import json, sys
tok = json.load(open(sys.argv[1]))
big = max(tok["model"]["vocab"].values()) + 1000
tok["added_tokens"].append({"id": big, "content": "<|beyond|>", "single_word": False,
                            "lstrip": False, "rstrip": False, "normalized": False,
                            "special": True})
json.dump(tok, open(sys.argv[1], "w"))
PY
refused "tokenizer ids beyond the model's vocabulary" "vocab" \
    "$BIN" generate --model "$W/mismatch" --prompt "<|beyond|> hi" --max-new-tokens 4 \
    --device cpu --template raw --out "$W/out.jsonl"
# score writes only at the end: an --out it cannot write is refused before the scoring
echo '{"prompt": "What is 2+2?", "response": "4"}' >"$W/score.jsonl"
refused "score --out in a missing directory" "nodir/out.jsonl: cannot create" \
    "$BIN" score --prm "$M" --ref "$M" --data "$W/score.jsonl" --device cpu --out "$W/nodir/out.jsonl"
refused "generate --out is a directory" "is a directory, expected a file name" \
    "$BIN" generate --model "$M" --prompt hi --max-new-tokens 4 --out "$W"
exit $fail
