#!/usr/bin/env bash
# The RL phase's learning-rate schedule (rl.lr_schedule, rl.warmup_steps, rl.min_lr_ratio):
# metrics.jsonl logs each step's rates on the schedule, the updates use them (a warm-up step
# trains the policy, PRM and critic exactly as a constant run at those rates does), and a
# schedule that does not exist stops the run with exit 2 and a line naming the field.
# Usage: test_rl_schedule.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

common=(--set sft.steps=30 --set task.eval_size=8 --set rl.prompts_per_step=8 --set threads=1
        --set rl.acc_lo=0 --set rl.acc_hi=1 --set rl.lr=2e-5 --set rl.prm_lr=1e-3
        --set rl.critic_lr=1e-5)

# cosine over 4 steps after 2 of warm-up, floor 0.1: 1/2, 1, 1, 0.55 of each peak
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set rl.lr_schedule=cosine \
    --set rl.warmup_steps=2 --set rl.min_lr_ratio=0.1 --set rl.estimator=gae \
    --set run_dir="$W/cos" >"$W/cos.log" 2>&1 || bad "cosine run failed: $(tail -3 "$W/cos.log")"
out=$(python3 - "$W/cos/metrics.jsonl" <<'PY' 2>&1
import json, sys
rl = [json.loads(l) for l in open(sys.argv[1])]
rl = [x for x in rl if x["phase"] == "rl"]
shape = [0.5, 1, 1, 0.55]
peaks = {"lr": 2e-5, "prm_lr": 1e-3, "critic_lr": 1e-5}
assert len(rl) == 4, len(rl)
for x, f in zip(rl, shape):
    for k, peak in peaks.items():
        assert abs(x[k] - f * peak) <= 1e-12 * peak, (x["step"], k, x[k], f * peak)
print("ok")
PY
)
expect "cosine with warm-up: each step's three rates in metrics.jsonl" "ok" "$out"

# the first warm-up step of 2 at half of every peak trains as a constant run at half
# does: the resume points (policy, PRM, critic and their AdamW moments) equal byte for byte
run1() { # name settings...: one RL step with a resume point
    local name=$1
    shift
    "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=1 --set rl.save_every=1 \
        --set rl.estimator=gae --set run_dir="$W/$name" "$@" >"$W/$name.log" 2>&1 ||
        bad "$name: run failed: $(tail -3 "$W/$name.log")"
}
run1 warm --set rl.warmup_steps=2
run1 half --set rl.lr=1e-5 --set rl.prm_lr=5e-4 --set rl.critic_lr=5e-6
run1 full
same() { # A B: the trained tensors of two resume points equal byte for byte
    python3 - "$W/$1/resume.safetensors" "$W/$2/resume.safetensors" <<'PY' 2>&1
import json, struct, sys
def tensors(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in h.items() if k.split(".")[0] in ("policy", "prm", "critic")}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert len(a) == 9, sorted(a)
diff = [k for k in a if a[k] != b.get(k)]
print("ok" if not diff else "differ: " + " ".join(sorted(diff)))
PY
}
expect "warm-up step = constant run at half the peaks (policy, PRM, critic)" "ok" "$(same warm half)"
expect "a run at the full peaks differs (so the check above can fail)" "differ: critic critic.adam_m critic.adam_v policy" "$(same warm full)"

# a schedule that does not exist: exit 2, one line naming the field
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=1 --set rl.lr_schedule=step \
    --set run_dir="$W/bad" 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "unknown schedule: exit 2" || bad "unknown schedule: exit code"
expect "unknown schedule: names the field" "rl.lr_schedule" "$err"
[ ! -e "$W/bad" ] && ok "unknown schedule: no run directory" || bad "unknown schedule: made $W/bad"

finish
