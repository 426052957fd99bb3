#!/usr/bin/env bash
# `denserl score` end to end on the CPU, on a tiny random Qwen2 model (written by
# `test_chat_dataset --make-model`, found beside the denserl binary) with the fixture Qwen2
# tokenizer. With the same weights as PRM and reference every reward must be exactly 0; a
# copy with some weights zeroed gives nonzero rewards, whose steps and score must add up.
# Checks: exit codes, one output line per input line, one reward per response token, one
# best line per group, the best-of-N summary, step granularity, and that bad input (a bad
# JSON line, a missing field, models with different vocabularies) gives one "error: ..."
# line naming the file and line, exit code 2 and no output file.
# Usage: test_score_cmd.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
need_helper
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to check the JSON output"
    exit 77
fi

M="$W/model"
"$HELPER" --make-model "$M" "$ROOT/tests/fixtures/bpe/qwen2" >/dev/null || {
    echo "FAIL could not write the test model"
    exit 1
}
# a second PRM: the same model with the last 4 KiB of weights set to 0.0 (a different model
# with the same vocabulary)
cp -r "$M" "$W/prm2"
python3 - "$W/prm2/model.safetensors" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-4096:] = bytes(4096)
open(p, "wb").write(b)
EOF
# a model with a different vocabulary: the llama3 fixture tokenizer
"$HELPER" --make-model "$W/llama" "$ROOT/tests/fixtures/bpe/llama3" >/dev/null || {
    echo "FAIL could not write the second test model"
    exit 1
}

D="$W/data.jsonl"
cat >"$D" <<'EOF'
{"prompt": "What is 2 + 3?", "response": "2 + 3 = 5.\n\nThe answer is \\boxed{5}.", "group": "a", "answer": "5"}
{"prompt": "What is 2 + 3?", "response": "First add.\n\nThen \\boxed{6}", "group": "a", "answer": "5"}
{"prompt": "What is 2 + 3?", "response": "\\boxed{5}", "group": "a", "answer": "5"}

{"prompt": "Name a color.", "response": "Red.\n\nOr blue.\n\nOr green.", "group": 7, "answer": "red"}
{"prompt": "Name a color.", "response": "blue", "group": 7, "answer": "red"}
{"prompt": "Name a color.", "response": "The answer is red.", "group": 7, "answer": "red"}
EOF

# check OUT DATA ZERO: the output's structure against the input (python3)
check() {
    python3 - "$@" <<'EOF'
import json, sys
out, data, zero = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
ins = [json.loads(l) for l in open(data, encoding="utf-8") if l.strip()]
outs = [json.loads(l) for l in open(out, encoding="utf-8")]
assert len(outs) == len(ins), f"{len(outs)} output lines for {len(ins)} input lines"
best = {}
for i, (a, o) in enumerate(zip(ins, outs)):
    for k in ("tokens", "token_rewards", "step_rewards", "score", "group", "best"):
        assert k in o, f"line {i + 1}: no {k}"
    assert o["group"] == a.get("group"), f"line {i + 1}: group {o['group']}"
    assert len(o["tokens"]) == len(o["token_rewards"]) > 0, f"line {i + 1}: lengths"
    assert "".join(o["tokens"]) == a["response"], f"line {i + 1}: tokens {o['tokens']}"
    steps = a["response"].count("\n\n") + 1
    assert len(o["step_rewards"]) == steps, f"line {i + 1}: {len(o['step_rewards'])} steps"
    tot = sum(o["token_rewards"])
    assert abs(tot - o["score"]) <= 1e-5 * (1 + abs(tot)), f"line {i + 1}: score {o['score']}"
    assert abs(sum(o["step_rewards"]) - o["score"]) <= 1e-5 * (1 + abs(tot))
    if zero:
        assert all(r == 0 for r in o["token_rewards"] + o["step_rewards"]), f"line {i + 1}: nonzero"
        assert o["score"] == 0
    else:
        assert any(r != 0 for r in o["token_rewards"]), f"line {i + 1}: all rewards 0"
    g = json.dumps(a.get("group"))
    best.setdefault(g, []).append((o["score"], i, o["best"]))
for g, rows in best.items():
    flags = [r[2] for r in rows]
    assert flags.count(True) == 1, f"group {g}: best flags {flags}"
    top = max(r[0] for r in rows)
    first = next(r[1] for r in rows if r[0] == top)
    assert next(r[1] for r in rows if r[2]) == first, f"group {g}: best is not the top score"
EOF
}

# ---- the same model as PRM and reference: every reward is 0 ----
out=$("$BIN" score --prm "$M" --ref "$M" --data "$D" --out "$W/zero.jsonl" 2>&1)
expect_eq "same model exit 0" 0 $?
if err=$(check "$W/zero.jsonl" "$D" 1 2>&1); then ok "same model: structure, zero rewards"; else bad "same model: $err"; fi
expect "summary groups" "6 responses in 2 groups" "$out"
# all scores tie at 0, so the first line of each group is picked: 1 of 2 groups correct
expect "summary best-of-N" "best-of-N    0.5000 (1 of 2 groups" "$out"
expect "summary first" "first        0.5000" "$out"
expect "summary oracle" "oracle       1.0000" "$out"
best=$(python3 -c 'import json,sys; print([json.loads(l)["best"] for l in open(sys.argv[1])])' "$W/zero.jsonl")
expect_eq "ties pick the first" "[True, False, False, True, False, False]" "$best"

# ---- a different PRM: nonzero rewards that add up; stdout output ----
"$BIN" score --prm "$W/prm2" --ref "$M" --data "$D" --beta 0.5 >"$W/diff.jsonl" 2>"$W/diff.err"
expect_eq "different PRM exit 0" 0 $?
if err=$(check "$W/diff.jsonl" "$D" 0 2>&1); then ok "different PRM: structure, sums"; else bad "different PRM: $err"; fi
expect "summary on stderr" "best-of-N" "$(cat "$W/diff.err")"

# ---- step granularity: each step's sum on its last token ----
"$BIN" score --prm "$W/prm2" --ref "$M" --data "$D" --beta 0.5 --granularity step \
    --out "$W/step.jsonl" >/dev/null 2>&1
expect_eq "step granularity exit 0" 0 $?
if err=$(python3 - "$W/diff.jsonl" "$W/step.jsonl" 2>&1 <<'EOF'
import json, sys
tok = [json.loads(l) for l in open(sys.argv[1])]
stp = [json.loads(l) for l in open(sys.argv[2])]
for a, b in zip(tok, stp):
    assert a["step_rewards"] == b["step_rewards"] and a["score"] == b["score"]
    nz = [r for r in b["token_rewards"] if r != 0]
    assert len(nz) <= len(b["step_rewards"]), (nz, b["step_rewards"])
    assert abs(sum(b["token_rewards"]) - b["score"]) < 1e-5
    assert b["token_rewards"][-1] == b["step_rewards"][-1]
EOF
); then ok "step granularity places step sums"; else bad "step granularity: $err"; fi

# ---- bad input: one error line naming the file and line, exit 2, nothing written ----
# run_bad NAME WANT DATA [flags...]
run_bad() {
    local name=$1 want=$2
    shift 2
    rm -f "$W/bad.out"
    local err code
    err=$("$BIN" score "$@" --out "$W/bad.out" 2>&1 >/dev/null)
    code=$?
    expect_eq "$name: exit 2" 2 "$code"
    expect "$name: message" "$want" "$err"
    expect_eq "$name: one line" 1 "$(printf '%s\n' "$err" | grep -c .)"
    if [ -e "$W/bad.out" ]; then bad "$name: output written"; else ok "$name: nothing written"; fi
}
B="$W/bad.jsonl"
{
    head -n 2 "$D"
    echo '{"prompt": "x", "response": '
    tail -n 1 "$D"
} >"$B"
run_bad "bad JSON" "error: $B:3: not valid JSON" --prm "$M" --ref "$M" --data "$B"
{
    head -n 4 "$D"
    echo '{"prompt": "x", "group": "a"}'
} >"$B"
run_bad "missing response" "error: $B:5: expected a string \"response\"" --prm "$M" --ref "$M" --data "$B"
echo '{"response": "x"}' >"$B"
run_bad "missing prompt" "error: $B:1: expected a string \"prompt\"" --prm "$M" --ref "$M" --data "$B"
echo '{"prompt": "x", "response": ""}' >"$B"
run_bad "empty response" "error: $B:1: the response encodes to no tokens" --prm "$M" --ref "$M" --data "$B"
run_bad "different vocab" "vocabulary of" --prm "$M" --ref "$W/llama" --data "$D"
run_bad "bad granularity" "error: --granularity: expected token or step" --prm "$M" --ref "$M" --data "$D" --granularity whole
run_bad "missing --ref" "error: score: --prm DIR, --ref DIR and --data FILE are required" --prm "$M" --data "$D"

finish
