#!/usr/bin/env bash
# gradient_checkpointing: the trained models keep each layer's input (and k, v) alone and run
# each layer's forward again in the backward. The run must be the run without it, bit for bit
# (SFT and two PRIME steps with every group kept: metrics, policy and PRM checkpoints), and its
# memory plan must hold fewer activations (tests/emu/memplan.sh: "auto" then takes more rows on
# the same GPU, and the plan covers the emulated GPU's peak).
# Usage: test_gradient_checkpointing.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
cd "$ROOT"
common=(--set sft.steps=3 --set task.eval_size=4 --set rl.prompts_per_step=4 --set threads=1
        --set rl.steps=2 --set rl.acc_lo=0 --set rl.acc_hi=1 --set rl.micro_batch_rows=4)
out0=$("$BIN" train configs/demo.json "${common[@]}" --set run_dir="$W/plain" 2>&1)
expect_eq "without: the run finishes" 0 $?
out1=$("$BIN" train configs/demo.json "${common[@]}" --set gradient_checkpointing=true \
       --set run_dir="$W/ckpt" 2>&1)
expect_eq "with: the run finishes" 0 $?
expect_eq "with gradient checkpointing: the same run (metrics, weights)" ok \
    "$(python3 tests/same_run.py "$W/plain" "$W/ckpt" 2>&1)"
act() { sed -n 's/.*activations \([0-9.]*\) MiB.*/\1/p' <<<"$1"; }
a0=$(act "$out0") a1=$(act "$out1")
awk -v a="$a0" -v b="$a1" 'BEGIN { exit !(b != "" && b < a) }' &&
    ok "the plan's activations: $a1 MiB against $a0" ||
    bad "the plan's activations: '$a1' MiB against '$a0'"
finish
