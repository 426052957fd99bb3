#!/usr/bin/env bash
# `denserl generate` and `denserl eval` end to end on the CPU, on a tiny random Qwen2 model
# (written by `test_chat_dataset --make-model`, found beside the denserl binary) with the
# fixture Qwen2 tokenizer. The model is random, so every outcome is 0: the checks are the
# output's structure and counts, that the same seed gives the same replies whatever the batch
# size, the exit codes, and that bad input (a data file with a bad line, a prompt too long, a
# template the tokenizer cannot serve, a bad flag) gives "error: ..." naming the file, line or
# flag, exit code 2 and no output file.
# Usage: test_eval_cmd.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
need_helper
# lines FILE: non-empty lines
lines() {
    local n
    n=$(grep -c . "$1" 2>/dev/null) || true
    echo "${n:-0}"
}
# json_ok FILE: every line parses as JSON with the given keys (python3 when present)
json_ok() {
    local file=$1
    shift
    if ! command -v python3 >/dev/null; then
        return 0
    fi
    python3 - "$file" "$@" <<'EOF'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    o = json.loads(line)
    missing = [k for k in keys if k not in o]
    if missing:
        sys.exit(f"{path}:{n}: missing {missing}")
EOF
}

M="$W/model"
GSM="$ROOT/tests/fixtures/data/gsm8k_mini.jsonl"
MATH="$ROOT/tests/fixtures/data/math_mini.jsonl"
"$HELPER" --make-model "$M" "$ROOT/tests/fixtures/bpe/qwen2" || {
    echo "FAIL could not write the test model"
    exit 1
}

# ---- generate ----

"$BIN" generate --model "$M" --prompt "What is 2+2?" --max-new-tokens 8 --samples 3 \
    --temperature 1 --seed 5 >"$W/g1.jsonl" 2>"$W/err"
rc=$?
expect_eq "generate --prompt: exit 0" 0 "$rc"
expect_eq "generate --prompt: 3 samples, 3 lines" 3 "$(lines "$W/g1.jsonl")"
json_ok "$W/g1.jsonl" prompt response tokens finish index sample &&
    ok "generate --prompt: JSON lines with prompt, response, tokens" ||
    bad "generate --prompt: JSON structure"
expect "generate --prompt: prompt echoed" '"prompt":"What is 2+2?"' "$(head -1 "$W/g1.jsonl")"
expect "generate --prompt: sample 2" '"sample":2' "$(sed -n 3p "$W/g1.jsonl")"
if command -v python3 >/dev/null; then
    t=$(python3 -c 'import json,sys; print(all(1 <= json.loads(l)["tokens"] <= 8 for l in open(sys.argv[1])))' "$W/g1.jsonl")
    expect_eq "generate: token counts within --max-new-tokens" True "$t"
fi

"$BIN" generate --model "$M" --prompt "What is 2+2?" --max-new-tokens 8 --samples 3 \
    --temperature 1 --seed 5 --batch 1 >"$W/g2.jsonl" 2>/dev/null
if cmp -s "$W/g1.jsonl" "$W/g2.jsonl"; then
    ok "generate: same seed, batch 1 vs 64: same replies"
else
    bad "generate: batch size changed the replies"
fi
"$BIN" generate --model "$M" --prompt "What is 2+2?" --max-new-tokens 8 --samples 3 \
    --temperature 1 --seed 6 >"$W/g3.jsonl" 2>/dev/null
if cmp -s "$W/g1.jsonl" "$W/g3.jsonl"; then
    bad "generate: another seed gave the same replies"
else
    ok "generate: another seed, other replies"
fi
"$BIN" generate --model "$M" --prompt "What is 2+2?" --max-new-tokens 6 --samples 2 \
    --temperature 0 --template raw >"$W/g4.jsonl" 2>/dev/null
expect_eq "generate greedy, raw template: both samples equal" \
    "$(sed -n 1p "$W/g4.jsonl" | sed 's/"sample":0//')" "$(sed -n 2p "$W/g4.jsonl" | sed 's/"sample":1//')"

"$BIN" generate --model "$M" --data "$GSM" --max-bad-fraction 0.2 --samples 2 \
    --max-new-tokens 4 --batch 3 --out "$W/g5.jsonl" >"$W/out" 2>"$W/err"
rc=$?
expect_eq "generate --data: exit 0" 0 "$rc"
expect_eq "generate --data: 7 questions x 2 samples" 14 "$(lines "$W/g5.jsonl")"
expect_eq "generate --data --out: nothing on stdout" 0 "$(lines "$W/out")"
json_ok "$W/g5.jsonl" prompt response tokens gold && ok "generate --data: gold included" ||
    bad "generate --data: JSON structure"
expect "generate --data: bad line warned with file:line" "gsm8k_mini.jsonl:6:" "$(cat "$W/err")"
expect "generate --data: skipped count" "skipped 1 bad line of 8" "$(cat "$W/err")"
expect "generate --data: progress with ETA" "ETA" "$(cat "$W/err")"
expect "generate --data: gold of line 3" '"gold":"2400"' "$(sed -n 5p "$W/g5.jsonl")"

"$BIN" generate --model "$M" --data "$MATH" --task math --limit 2 --max-bad-fraction 0.2 \
    --max-new-tokens 3 --system "Be brief." \
    --suffix 'Please reason step by step, and put your final answer within \boxed{}.' \
    >"$W/g6.jsonl" 2>/dev/null
rc=$?
expect_eq "generate math --limit 2: exit 0" 0 "$rc"
expect_eq "generate math --limit 2: 2 lines" 2 "$(lines "$W/g6.jsonl")"
expect "generate math: gold from \\boxed" '"gold":"\\frac{3}{4}"' "$(head -1 "$W/g6.jsonl")"

# ---- eval ----

"$BIN" eval --model "$M" --data "$GSM" --task gsm8k --max-bad-fraction 0.2 --samples 2 \
    --max-new-tokens 6 --batch 4 --out "$W/e1.jsonl" >"$W/out" 2>"$W/err"
rc=$?
expect_eq "eval gsm8k: exit 0" 0 "$rc"
expect_eq "eval gsm8k: one line per question" 7 "$(lines "$W/e1.jsonl")"
json_ok "$W/e1.jsonl" index line gold extracted outcomes pass1 passk tokens responses &&
    ok "eval: per-question JSON with index, gold, extracted, outcomes" ||
    bad "eval: per-question JSON structure"
expect "eval: two outcomes per question, all 0" '"outcomes":[0,0]' "$(head -1 "$W/e1.jsonl")"
expect "eval: gold" '"gold":"7"' "$(head -1 "$W/e1.jsonl")"
expect "eval: index and line of the 4th question" '"index":3,"line":5' "$(sed -n 4p "$W/e1.jsonl")"
out=$(cat "$W/out")
expect "eval summary: pass@1" "pass@1       0.0000" "$out"
expect "eval summary: pass@2" "pass@2       0.0000 (0 of 7 problems)" "$out"
expect "eval summary: problems and skipped lines" "problems     7 (skipped 1 bad line)" "$out"
expect "eval summary: K=2 default temperature 0.6" "2 per problem, temperature 0.6" "$out"
expect "eval: progress line with rate and ETA" "replies/s" "$(cat "$W/err")"
expect "eval: progress ETA" "ETA" "$(cat "$W/err")"

"$BIN" eval --model "$M" --data "$MATH" --task math --max-bad-fraction 0.2 --limit 3 \
    --max-new-tokens 4 >"$W/out" 2>"$W/err"
rc=$?
expect_eq "eval math --limit 3 (no --out): exit 0" 0 "$rc"
out=$(cat "$W/out")
expect "eval math: 3 problems" "problems     3" "$out"
expect "eval math: K=1 greedy by default" "1 per problem, temperature 0," "$out"
expect "eval math: pass@1 line" "pass@1" "$out"

# ---- bad input: exit 2, "error: ..." naming the place, no output file ----

"$BIN" eval --model "$M" --data "$GSM" --task gsm8k --out "$W/bad.jsonl" >"$W/out" 2>"$W/err"
rc=$?
expect_eq "eval, bad line over the allowed fraction: exit 2" 2 "$rc"
expect "eval, bad line: error names file:line" "error: $GSM: 1 of 8 lines are bad" "$(cat "$W/err")"
expect "eval, bad line: ... first $GSM:6:" "$GSM:6:" "$(cat "$W/err")"
[ -e "$W/bad.jsonl" ] && bad "eval, bad data: output file written" || ok "eval, bad data: no output file"

"$BIN" generate --model "$M" --data "$GSM" >"$W/out" 2>"$W/err"
rc=$?
expect_eq "generate, bad data: exit 2" 2 "$rc"
expect "generate, bad data: names file:line" "$GSM:6:" "$(cat "$W/err")"
expect_eq "generate, bad data: nothing on stdout" 0 "$(lines "$W/out")"

long=$(printf 'word %.0s' $(seq 1 600))
"$BIN" generate --model "$M" --prompt "$long" >"$W/out" 2>"$W/err"
expect_eq "prompt past the context: exit 2" 2 "$?"
expect "prompt past the context: names --prompt" "error: --prompt: the prompt" "$(cat "$W/err")"

"$BIN" eval --model "$M" --data "$GSM" --task gsm8k --template llama3 >"$W/out" 2>"$W/err"
expect_eq "llama3 template on a Qwen tokenizer: exit 2" 2 "$?"
expect "llama3 template: names tokenizer.json" "tokenizer.json: the llama3 template" "$(cat "$W/err")"

mkdir "$W/noconf" && cp "$M/config.json" "$M/model.safetensors" "$M/tokenizer.json" "$W/noconf/"
"$BIN" generate --model "$W/noconf" --prompt hi >"$W/out" 2>"$W/err"
expect_eq "auto template without tokenizer_config.json: exit 2" 2 "$?"
expect "auto template: names the file" "noconf/tokenizer_config.json" "$(cat "$W/err")"
"$BIN" generate --model "$W/noconf" --prompt hi --template chatml --max-new-tokens 2 >"$W/out" 2>/dev/null
expect_eq "explicit template needs no tokenizer_config.json" 0 "$?"

"$BIN" eval --model "$M" --data "$GSM" >"$W/out" 2>"$W/err"
expect_eq "eval without --task: exit 2" 2 "$?"
expect "eval without --task: says what is required" "--task" "$(cat "$W/err")"
"$BIN" eval --model "$M" --data "$GSM" --task gsm8k --samples 0 >"$W/out" 2>"$W/err"
expect_eq "eval --samples 0: exit 2" 2 "$?"
expect "eval --samples 0: names the flag" "error: --samples" "$(cat "$W/err")"
"$BIN" generate --model "$M" --prompt hi --top-p 1.5 >"$W/out" 2>"$W/err"
expect_eq "--top-p 1.5: exit 2" 2 "$?"
"$BIN" generate --model "$M" --prompt hi --data "$GSM" >"$W/out" 2>"$W/err"
expect_eq "--prompt and --data together: exit 2" 2 "$?"
"$BIN" generate --model "$M" --prompt hi --frobnicate 1 >"$W/out" 2>"$W/err"
expect_eq "unknown flag: exit 2" 2 "$?"
expect "unknown flag: named" "'--frobnicate'" "$(cat "$W/err")"
"$BIN" eval --model "$W/missing" --data "$GSM" --task gsm8k >"$W/out" 2>"$W/err"
expect_eq "missing model dir: exit 2" 2 "$?"
expect "missing model dir: names it" "error: $W/missing" "$(cat "$W/err")"
"$BIN" eval --model "$M" --data "$GSM" --task gsm8k --precision bf16 --device cpu >"$W/out" 2>"$W/err"
expect_eq "bf16 on the CPU: exit 2" 2 "$?"
"$BIN" generate --help >"$W/out" 2>&1
expect_eq "generate --help: exit 0" 0 "$?"
expect "generate --help lists --suffix" "--suffix" "$(cat "$W/out")"

finish
