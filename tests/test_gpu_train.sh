#!/usr/bin/env bash
# The whole training program on the GPU against the CPU: a few SFT steps and two PRIME steps
# of the demo config (every group kept, so that the PRM update, the advantages and PPO all
# run; the second step's token rewards come from the PRM the first step updated), once with
# device "cuda" and once with "cpu", from the same seed. The first step samples from weights
# a few SFT steps apart by rounding only, so its samples must be the same tokens, and every
# metric of both steps must agree within the rounding of sums taken in another order.
# Skips (77) where no GPU answers. Usage: test_gpu_train.sh path/to/denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() { # device [precision [more --set ...]]
    local name=$1${2:+-$2}
    "$BIN" train configs/demo.json --set device="$1" --set precision="${2:-fp32}" "${@:3}" \
        --set sft.steps=4 --set rl.steps=2 --set rl.prompts_per_step=4 --set rl.acc_lo=0 \
        --set rl.acc_hi=1 --set task.eval_size=8 --set run_dir="$W/$name" >"$W/$name.out" 2>&1
}
run cuda
rc=$?
if [ $rc = 2 ] && grep -q 'no GPU answered\|without CUDA' "$W/cuda.out"; then
    echo "SKIP $(head -1 "$W/cuda.out"): nothing checked"
    exit 77
fi
if [ $rc != 0 ]; then
    echo "FAIL the GPU run exits with $rc:"
    tail -5 "$W/cuda.out"
    exit 1
fi
head -1 "$W/cuda.out"
if ! run cpu; then
    echo "FAIL the CPU run:"
    tail -5 "$W/cpu.out"
    exit 1
fi
# bf16 weights and activations on the GPU (fp16 logits, the cuBLASLt epilogues), with 3
# heads of 64 (the flash attention's smallest head) for the demo's 6 of 32: its samples differ
# from fp32's, so only the SFT loss is compared (with the CPU's at the same shape), and every
# RL metric must be finite
H3=(--set model.num_attention_heads=3 --set model.num_key_value_heads=1)
for d in "cuda bf16" "cpu fp32"; do
    if ! run $d "${H3[@]}"; then
        echo "FAIL the run on $d with 3 heads:"
        tail -5 "$W/${d/ /-}.out"
        exit 1
    fi
done
python3 - "$W" <<'PY'
import json, math, sys
w = sys.argv[1]
rows = {d: [json.loads(l) for l in open(f"{w}/{d}/metrics.jsonl")]
        for d in ("cuda", "cpu", "cuda-bf16", "cpu-fp32")}
fails = 0
def check(ok, what):
    global fails
    fails += not ok
    print(("PASS " if ok else "FAIL ") + what)
def close(a, b, rel, floor):
    return math.isfinite(a) and abs(a - b) <= rel * abs(b) + floor
sft = {d: [x for x in r if x["phase"] == "sft"][-1] for d, r in rows.items()}
check(close(sft["cuda"]["loss"], sft["cpu"]["loss"], 1e-4, 0),
      f"SFT loss GPU {sft['cuda']['loss']} vs CPU {sft['cpu']['loss']}")
rl = {d: [x for x in r if x["phase"] == "rl"] for d, r in rows.items()}
check(len(rl["cuda"]) == 2 and len(rl["cpu"]) == 2, "two RL steps on each device")
# the same tokens in step 1: equal counts; then the sums' rounding (1e-6 relative per sum)
# through the losses' and norms' reductions. Step 1 samples twice the groups it needs
# (rl.oversample), so step 2 trains on the rest with the rewards of the PRM step 1 updated.
exact = ["groups_kept", "accuracy", "response_len", "truncation_rate"]
near = {"prm_loss": 1e-4, "entropy": 1e-4, "prm_grad_norm": 1e-3, "reward_mean": 1e-3,
        "reward_min": 1e-3, "reward_max": 1e-3, "adv_std": 1e-3, "policy_loss": 1e-3,
        "grad_norm": 1e-3}
for s in range(2):
    g, c = rl["cuda"][s], rl["cpu"][s]
    check(g["prompts_drawn"] == c["prompts_drawn"],
          f"step {s + 1} prompts drawn: GPU {g['prompts_drawn']} vs CPU {c['prompts_drawn']}")
    if c["prompts_drawn"] == 0:  # trained on groups left over from step 1's oversampling
        check(all(g[k] is None for k in exact[1:]), f"step {s + 1}: no rollouts on the GPU either")
    else:
        for k in exact:
            check(g[k] == c[k], f"step {s + 1} {k}: GPU {g[k]} vs CPU {c[k]}")
    for k, rel in near.items():
        check(close(g[k], c[k], rel, 1e-6), f"step {s + 1} {k}: GPU {g[k]:.7g} vs CPU {c[k]:.7g}")
    for k in ("kl_ref", "kl_old", "clip_frac"):
        check(close(g[k], c[k], 1e-2, 1e-6), f"step {s + 1} {k}: GPU {g[k]:.3g} vs CPU {c[k]:.3g}")
b16 = rows["cuda-bf16"]
sft16 = [x for x in b16 if x["phase"] == "sft"][-1]["loss"]
sft32 = [x for x in rows["cpu-fp32"] if x["phase"] == "sft"][-1]["loss"]
check(close(sft16, sft32, 2e-2, 0), f"bf16 SFT loss GPU {sft16} vs fp32 CPU {sft32}")
rl16 = [x for x in b16 if x["phase"] == "rl"]
bad = [(x["step"], k) for x in rl16 for k in near if not math.isfinite(x[k])]
check(len(rl16) == 2 and not bad, f"bf16: two RL steps, every metric finite {bad or ''}")
print(f"{fails} failed")
sys.exit(1 if fails else 0)
PY
