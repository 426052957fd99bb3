#!/usr/bin/env bash
# The same config and seed give identical losses and identical checkpoints; another seed
# gives different ones (so the comparison can fail). Usage: test_determinism.sh denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
losses() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["phase"], r["step"], repr(r.get("loss")), repr(r.get("eval_loss")), r.get("grad_norm"))
' "$1/metrics.jsonl"; }
run() { "$BIN" train configs/demo.json --set run_dir="$W/$1" --set seed=$2 --set sft.steps=6 \
        --set sft.log_every=1 --set sft.eval_every=3 --set task.eval_size=16 \
        --set model.hidden_size=64 --set model.num_hidden_layers=2 --set model.num_attention_heads=4 \
        --set model.intermediate_size=96 --set sft.batch_size=8 >/dev/null 2>&1; }
run a 5 && run b 5 && run c 6
check "runs complete" $?
losses "$W/a" >"$W/la"; losses "$W/b" >"$W/lb"; losses "$W/c" >"$W/lc"
[ -s "$W/la" ] && cmp -s "$W/la" "$W/lb"; check "same seed: identical losses and grad norms" $?
cmp -s "$W/a/sft/model.safetensors" "$W/b/sft/model.safetensors"; check "same seed: identical checkpoints" $?
! cmp -s "$W/la" "$W/lc"; check "another seed: different losses" $?
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
