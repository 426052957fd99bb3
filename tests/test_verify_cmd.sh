#!/usr/bin/env bash
# `denserl verify` from the command line: one case from flags and a JSONL file of cases must
# print one JSON object per case with the extraction rule, both normalised answers and the
# outcome; a GSM8K gold solution must count by its "####" part; a bad JSONL line must give
# "error: FILE:LINE: ..." and exit code 2 with nothing on stdout; usage errors exit 2.
# Usage: test_verify_cmd.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

out=$("$BIN" verify --task math --answer '\frac{3}{4}' \
    --response 'so the answer is $\boxed{\dfrac{3}{4}}$.')
expect "math boxed: outcome" '"outcome":1' "$out"
expect "math boxed: rule" '"rule":"boxed"' "$out"
expect "math boxed: extracted" '"extracted":"\\dfrac{3}{4}"' "$out"
expect "math boxed: normalised" '"response_normalized":"\\frac{3}{4}"' "$out"

out=$("$BIN" verify --task gsm8k --answer $'She sold 48/2 = <<48/2=24>>24 clips.\n#### 1,234' \
    --response 'Adding up gives 1234. #### 1,234')
expect "gsm8k solution gold: outcome" '"outcome":1' "$out"
expect "gsm8k solution gold: normalised" '"gold_normalized":"1234"' "$out"
expect "gsm8k: rule" '"rule":"hash"' "$out"

out=$("$BIN" verify --task math --answer '0.5' --response 'The answer is 0.05.')
expect "near miss scores 0" '"outcome":0' "$out"
expect "answer_is rule" '"rule":"answer_is"' "$out"

out=$("$BIN" verify --task math --answer '7' --response 'I am not sure.')
expect "no answer: rule none" '"rule":"none"' "$out"
expect "no answer: extracted null" '"extracted":null' "$out"
expect "no answer: outcome 0" '"outcome":0' "$out"

cat >"$W/cases.jsonl" <<'EOF'
{"answer": "72", "response": "48 + 24 = 72. #### 72"}

{"answer": "\\text{(C)}", "response": "The correct option is $\\boxed{C}$."}
{"answer": 18, "response": "She makes $18 a day. The answer is 18 dollars."}
{"answer": "(1, 2]", "response": "The set is $\\boxed{(1,2)}$."}
EOF
out=$("$BIN" verify --task math --data "$W/cases.jsonl")
rc=$?
[ "$rc" = 0 ] && ok "data file: exit 0" || bad "data file: exit $rc"
[ "$(printf '%s\n' "$out" | wc -l)" = 4 ] && ok "data file: one line per case" ||
    bad "data file: expected 4 lines, got: $out"
outcomes=$(printf '%s\n' "$out" | grep -o '"outcome":[01]' | tr -d '"outcome:' | tr -d '\n')
[ "$outcomes" = 1110 ] && ok "data file: outcomes 1110" || bad "data file: outcomes '$outcomes'"
if command -v python3 >/dev/null; then
    printf '%s\n' "$out" | python3 -c 'import json,sys
for l in sys.stdin: o = json.loads(l); assert set(o) == {"extracted", "rule", "gold_normalized", "response_normalized", "outcome"}, o' &&
        ok "data file: valid JSON with the five keys" || bad "data file: JSON lines"
fi

printf '%s\n' '{"answer": "1", "response": "#### 1"}' '{"answer": "2", "response": ' >"$W/bad.jsonl"
out=$("$BIN" verify --task gsm8k --data "$W/bad.jsonl" 2>"$W/err")
rc=$?
[ "$rc" = 2 ] && ok "bad JSONL line: exit 2" || bad "bad JSONL line: exit $rc"
expect "bad JSONL line: names file and line" "error: $W/bad.jsonl:2:" "$(cat "$W/err")"
[ -z "$out" ] && ok "bad JSONL line: nothing on stdout" || bad "bad JSONL line printed '$out'"

printf '%s\n' '{"answer": "1"}' >"$W/noresp.jsonl"
"$BIN" verify --task math --data "$W/noresp.jsonl" 2>"$W/err" >/dev/null
rc=$?
[ "$rc" = 2 ] && ok "missing response: exit 2" || bad "missing response: exit $rc"
expect "missing response: message" 'noresp.jsonl:1: "response"' "$(cat "$W/err")"

"$BIN" verify --task math --data "$W/absent.jsonl" 2>"$W/err" >/dev/null
rc=$?
[ "$rc" = 2 ] && ok "absent file: exit 2" || bad "absent file: exit $rc"

for args in "--task math" "--task algebra --answer 1 --response 1" "--task math --answer 1" \
    "--task math --answer 1 --response 1 --data x" "--task math --bogus" "--task"; do
    # shellcheck disable=SC2086
    "$BIN" verify $args >/dev/null 2>"$W/err"
    rc=$?
    lines=$(wc -l <"$W/err")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -q '^error: verify:' "$W/err"; then
        ok "usage error ($args): one line, exit 2"
    else
        bad "usage error ($args): exit $rc, stderr: $(cat "$W/err")"
    fi
done

finish
