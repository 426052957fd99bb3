#!/usr/bin/env bash
# Micro-batching (rl.micro_batch_rows) changes how many rows each model call holds, not the
# step: a run with small micro-batches must follow the whole-batch run up to float summation
# order. And the fused forwards (rl.fuse_forwards: the PRM's and, with one PPO mini-batch, the
# policy's update forwards standing in for the log-prob phase's) give the same run, bit for
# bit, as separate forwards; and so do the PRM, the reference and the critic using the policy's
# activations (the default) and using their own. Usage: test_micro_batch.sh path/to/denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
common=(--set sft.steps=20 --set rl.steps=2 --set task.eval_size=16 --set rl.prm_minibatches=2)
"$BIN" train configs/demo.json "${common[@]}" --set run_dir="$W/whole" >"$W/out1" 2>&1 || {
    cat "$W/out1"; echo "FAIL whole-batch run"; exit 1; }
"$BIN" train configs/demo.json "${common[@]}" --set rl.micro_batch_rows=7 \
    --set run_dir="$W/micro" >"$W/out2" 2>&1 || { cat "$W/out2"; echo "FAIL micro-batch run"; exit 1; }
python3 - "$W" "$(dirname "$0")" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_reldiff import reldiff
w = sys.argv[1]
def rl(run):
    return [json.loads(l) for l in open(f"{w}/{run}/metrics.jsonl") if '"phase": "rl"' in l
            or json.loads(l).get("phase") == "rl"]
fails = 0
a, b = rl("whole"), rl("micro")
assert len(a) == len(b) == 2
for x, y in zip(a, b):
    for k in ("prm_loss", "policy_loss", "grad_norm", "prm_grad_norm", "reward_mean", "adv_std"):
        ok = abs(x[k] - y[k]) <= 1e-4 * max(1.0, abs(x[k]))
        print(("PASS" if ok else "FAIL"), f"step {x['step']} {k}: whole {x[k]:.7g} micro {y[k]:.7g}")
        fails += not ok
for m in ("policy", "prm"):
    rel = reldiff(f"{w}/whole/{m}/model.safetensors", f"{w}/micro/{m}/model.safetensors")
    ok = rel < 1e-5
    print(("PASS" if ok else "FAIL"), f"{m} weights after RL: relative difference {rel:.2e}")
    fails += not ok
sys.exit(1 if fails else 0)
PY
st=$?
fused=(--set sft.steps=20 --set rl.steps=2 --set task.eval_size=16 --set rl.ppo_minibatches=1
       --set rl.micro_batch_rows=7)
# train NAME ARGS...: a quick run into $W/NAME (the test stops if it fails)
train() {
    local name=$1
    shift
    "$BIN" train configs/demo.json "${fused[@]}" "$@" --set run_dir="$W/$name" \
        >"$W/$name.out" 2>&1 || { cat "$W/$name.out"; exit 1; }
}
# same WHAT A B: runs A and B must match bit for bit
same() {
    local res
    res=$(python3 "$(dirname "$0")/same_run.py" "$W/$2" "$W/$3")
    if [ "$res" = ok ]; then
        echo "PASS $1: the same metrics and weights"
    else
        echo "FAIL $1: $res"
        st=1
    fi
}
train fuse_true --set rl.fuse_forwards=true
train fuse_false --set rl.fuse_forwards=false
same "fused forwards against separate ones" fuse_true fuse_false
# the PRM, reference and critic on the policy's activations (the default) or their own
DENSERL_SHARED_ACTIVATIONS=0 train own --set rl.estimator=gae
train shared --set rl.estimator=gae
same "shared activations against each model's own" own shared
exit $st
