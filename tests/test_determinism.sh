#!/usr/bin/env bash
# The same config and seed give identical losses and identical checkpoints; another seed
# gives different ones (so the comparison can fail). Usage: test_determinism.sh denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
# every metric except wall-clock timings
losses() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    for k in ("tokens_per_s", "elapsed_s", "phases"):
        r.pop(k, None)
    print(json.dumps(r, sort_keys=True))
' "$1/metrics.jsonl"; }
run() { "$BIN" train configs/demo.json --set run_dir="$W/$1" --set seed=$2 --set sft.steps=6 \
        --set sft.log_every=1 --set sft.eval_every=3 --set task.eval_size=16 \
        --set model.hidden_size=64 --set model.num_hidden_layers=2 --set model.num_attention_heads=4 \
        --set model.intermediate_size=96 --set sft.batch_size=8 \
        --set rl.steps=2 --set rl.prompts_per_step=4 --set rl.max_response_tokens=40 \
        --set rl.acc_lo=0 --set rl.acc_hi=1 --set rl.lr=1e-3 --set rl.prm_lr=1e-3 >/dev/null 2>&1; }
run a 5 && run b 5 && run c 6
check "runs complete" $?
losses "$W/a" >"$W/la"; losses "$W/b" >"$W/lb"; losses "$W/c" >"$W/lc"
[ -s "$W/la" ] && cmp -s "$W/la" "$W/lb"; check "same seed: identical SFT and RL metrics (losses, rewards, grad norms, accuracy)" $?
grep -q '"phase": "rl"' "$W/la"; check "the RL phase ran and was compared" $?
cmp -s "$W/a/sft/model.safetensors" "$W/b/sft/model.safetensors" &&
cmp -s "$W/a/policy/model.safetensors" "$W/b/policy/model.safetensors" &&
cmp -s "$W/a/prm/model.safetensors" "$W/b/prm/model.safetensors"; check "same seed: identical SFT, policy and PRM checkpoints" $?
! cmp -s "$W/la" "$W/lc"; check "another seed: different losses" $?
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
