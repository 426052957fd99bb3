#!/usr/bin/env bash
# On the emulated GPU only (its DENSERL_EMU_PEAK line, the most device memory held at once):
# the memory plan a run prints must cover what the run then holds (every group kept, so that
# every update runs), and by little more (at
# most 8%), in fp32 and bf16, at 2 rows per model call and at whole mini-batches, with a
# critic, without a PRM (rl.prm_update off), with the SFT batch larger than the calls, and with each model's activations its
# own (DENSERL_SHARED_ACTIVATIONS=0, which must give the same run bit for bit). Then on an
# emulated GPU too small for whole mini-batches: "auto" takes fewer rows and the run fits,
# and keeps them when resumed on a larger one; whole mini-batches are refused before any work
# with exit status 2; and a real model's shape with "auto" on an emulated H200 (`train
# --dry-run`, allocations untouched) holds no more than its plan. Sampling's sort buffers
# are kept small (DENSERL_SAMPLE_GROUP_KEYS, which the plan reads as the kernel does) so that
# the model's terms, not a fixed 256 MiB, decide the comparison.
# Usage: memplan.sh path/to/denserl
set -u
source "$(dirname "$0")/../shtest.sh"
cd "$ROOT"
export DENSERL_SAMPLE_GROUP_KEYS=4096 DENSERL_EMU_PEAK=1
cat >"$W/run.json" <<'JSON'
{"seed": 5, "device": "cuda", "threads": 2,
 "model": {"init": "random", "model_type": "llama", "hidden_size": 128, "num_hidden_layers": 2,
   "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 256,
   "max_position_embeddings": 128, "vocab_size": 2048},
 "task": {"name": "arith", "max_operands": 3, "max_value": 9, "eval_size": 4},
 "sft": {"steps": 0},
 "rl": {"steps": 1, "prompts_per_step": 8, "samples_per_prompt": 4, "max_response_tokens": 24,
   "ppo_minibatches": 2, "prm_minibatches": 1, "acc_lo": 0.0, "acc_hi": 1.0}}
JSON

# run NAME ARGS...: the run's output in $W/NAME.out, its status in $st
run() {
    local name=$1
    shift
    "$BIN" train "$W/run.json" --set run_dir="$W/$name" "$@" >"$W/$name.out" 2>&1
    st=$?
}
# MiB of the plan's line and of the emulation's peak in $W/NAME.out
plan_mib() {
    sed -n 's/^memory plan: \([0-9.]*\) MiB.*/\1/p' "$W/$1.out"
}
peak_mib() {
    sed -n 's/^emu: device peak \([0-9]*\) bytes/\1/p' "$W/$1.out" | awk '{printf "%.1f", $1 / 1048576}'
}
covers() { # NAME ARGS...: the plan covers the peak, within 8%
    local name=$1
    shift
    run "$name" "$@"
    if [ $st -ne 0 ]; then
        bad "$name: the run failed: $(tail -2 "$W/$name.out")"
        return
    fi
    local plan peak
    plan=$(plan_mib "$name")
    peak=$(peak_mib "$name")
    if awk -v p="$plan" -v k="$peak" 'BEGIN { exit !(p >= k && p <= 1.08 * k) }'; then
        ok "$name: plan $plan MiB, peak $peak MiB"
    else
        bad "$name: plan '$plan' MiB against a peak of '$peak' MiB (want peak <= plan <= 1.08 x peak)"
    fi
}
for prec in fp32 bf16; do
    covers "$prec, 2 rows" --set precision=$prec --set rl.micro_batch_rows=2
    covers "$prec, whole mini-batches" --set precision=$prec
done
DENSERL_SHARED_ACTIVATIONS=0 covers "bf16, 2 rows, activations of their own" \
    --set precision=bf16 --set rl.micro_batch_rows=2
res=$(python3 "$ROOT/tests/same_run.py" "$W/bf16, 2 rows" "$W/bf16, 2 rows, activations of their own")
expect_eq "the policy's activations shared with the PRM and the reference: the same run" ok "$res"
DENSERL_REF_BF16_ONLY=0 covers "bf16, 2 rows, the reference's matrices in fp32 too" \
    --set precision=bf16 --set rl.micro_batch_rows=2
res=$(python3 "$ROOT/tests/same_run.py" "$W/bf16, 2 rows" "$W/bf16, 2 rows, the reference's matrices in fp32 too")
expect_eq "the reference's matrices in bf16 alone: the same run" ok "$res"
p_ref=$(plan_mib "bf16, 2 rows, the reference's matrices in fp32 too")
p_own=$(plan_mib "bf16, 2 rows")
awk -v a="$p_ref" -v b="$p_own" 'BEGIN { exit !(a > b) }' &&
    ok "the reference's fp32 matrices dropped: plan $p_own MiB against $p_ref" ||
    bad "the reference's fp32 matrices dropped: plan '$p_own' MiB against '$p_ref'"
covers "bf16, 2 rows, gradient checkpointing" --set precision=bf16 --set rl.micro_batch_rows=2 \
    --set gradient_checkpointing=true
expect_eq "gradient checkpointing: the same run" ok \
    "$(python3 "$ROOT/tests/same_run.py" "$W/bf16, 2 rows" "$W/bf16, 2 rows, gradient checkpointing")"
covers "bf16, gae critic" --set precision=bf16 --set rl.micro_batch_rows=2 --set rl.estimator=gae
DENSERL_SHARED_ACTIVATIONS=0 covers "bf16, no PRM (prm_update off), activations of their own" \
    --set precision=bf16 --set rl.micro_batch_rows=2 --set rl.estimator=rloo_outcome \
    --set rl.prm_update=off
covers "bf16, SFT batch of 40" --set precision=bf16 --set rl.micro_batch_rows=2 \
    --set sft.steps=2 --set sft.batch_size=40

# a GPU whose free memory (less the reserve for a small device, a quarter) is halfway between
# the plans at 2 rows and at all 32
p2=$(plan_mib "bf16, 2 rows")
p32=$(plan_mib "bf16, whole mini-batches")
gb=$(awk -v a="$p2" -v b="$p32" 'BEGIN { printf "%.4f", (a + b) / 2 / 0.75 / 1024 }')
auto=(--set precision=bf16 --set rl.micro_batch_rows='"auto"' --set rl.save_every=1)
DENSERL_EMU_GPU_GB=$gb run auto "${auto[@]}"
rows=$(sed -n 's/.*, \([0-9]*\) of 32 rows per model call ("auto".*/\1/p' "$W/auto.out")
if [ $st -eq 0 ] && [ -n "$rows" ] && [ "$rows" -gt 2 ] && [ "$rows" -lt 32 ]; then
    ok "auto on a ${gb} GB GPU: $rows of 32 rows, and the run fits"
else
    bad "auto on a ${gb} GB GPU: status $st, rows '$rows': $(grep -E 'memory plan|error' "$W/auto.out")"
fi
# resumed on a GPU with room for every row, "auto" keeps the rows the run took, and the run
# ends as one that went straight to step 2 on the small GPU
"$BIN" train "$W/run.json" --set run_dir="$W/auto" "${auto[@]}" --set rl.steps=2 --resume \
    >"$W/resumed.out" 2>&1
expect "auto, resumed: the rows the run took" \
    "$rows of 32 rows per model call (\"auto\": as the run resumed took)" "$(cat "$W/resumed.out")"
DENSERL_EMU_GPU_GB=$gb run straight "${auto[@]}" --set rl.steps=2
expect_eq "auto, resumed = straight" ok "$(python3 "$ROOT/tests/same_run.py" "$W/straight" "$W/auto")"
# with gradient checkpointing more rows fit a call on the same GPU (8 layers: the layers'
# activations outweigh the logits chunk; a GPU halfway between the plans at 2 and 32 rows
# without it), and the run fits
deep=(--set model.num_hidden_layers=8 --set precision=bf16)
run deep2 "${deep[@]}" --set rl.micro_batch_rows=2 --dry-run
run deep32 "${deep[@]}" --dry-run
gd=$(awk -v a="$(plan_mib deep2)" -v b="$(plan_mib deep32)" \
    'BEGIN { printf "%.4f", (a + b) / 2 / 0.75 / 1024 }')
deep+=(--set rl.micro_batch_rows='"auto"')
DENSERL_EMU_GPU_GB=$gd run deep "${deep[@]}"
DENSERL_EMU_GPU_GB=$gd run deep_ckpt "${deep[@]}" --set gradient_checkpointing=true
r0=$(sed -n 's/.*, \([0-9]*\) of 32 rows per model call.*/\1/p' "$W/deep.out")
r1=$(sed -n 's/.*, \([0-9]*\) of 32 rows per model call.*/\1/p' "$W/deep_ckpt.out")
if [ $st -eq 0 ] && [ -n "$r0" ] && [ -n "$r1" ] && [ "$r1" -gt "$r0" ]; then
    ok "auto, 8 layers on a ${gd} GB GPU: $r1 rows a call with gradient checkpointing, $r0 without"
else
    bad "auto, 8 layers on a ${gd} GB GPU: status $st, rows '$r1' with checkpointing, '$r0' without"
fi
gb=$(awk -v a="$p2" -v b="$p32" 'BEGIN { printf "%.4f", (a + b) / 2 / 1024 }')
DENSERL_EMU_GPU_GB=$gb run whole --set precision=bf16
expect_eq "whole mini-batches on a ${gb} GB GPU: exit status" 2 $st
expect "whole mini-batches on a ${gb} GB GPU: refused before any work" \
    "error: $W/run.json: 'rl.micro_batch_rows' 0 (calls of all 32 rows) needs" "$(cat "$W/whole.out")"
[ ! -e "$W/whole" ] && ok "refused: no run directory" || bad "refused: a run directory was made"
# the 0.5B bench shape on an emulated 139.8 GB GPU (an H200's) with its allocations left
# untouched (DENSERL_EMU_LAZY): with "auto", what `train --dry-run` makes (the models, AdamW,
# the generator) never holds more than the plan at any moment. bf16 activations made at fp32
# size and then halved needed 47 GB more than the GPU had free at the first such call.
dry() { # NAME ENV...
    local name=$1
    shift
    env DENSERL_EMU_LAZY=1 DENSERL_EMU_GPU_GB=139.8 "$@" "$BIN" train configs/bench_qwen05b.json \
        --set run_dir="$W/dry" --set precision=bf16 --set rl.micro_batch_rows='"auto"' \
        --dry-run >"$W/$name.out" 2>&1
    st=$?
    local plan peak
    plan=$(sed -n 's/^memory plan: \([0-9.]*\) GiB.*/\1/p' "$W/$name.out")
    peak=$(sed -n 's/^emu: device peak \([0-9]*\) bytes/\1/p' "$W/$name.out" |
        awk '{printf "%.1f", $1 / 1073741824}')
    if [ $st -eq 0 ] && awk -v p="$plan" -v k="$peak" 'BEGIN { exit !(p != "" && p >= k) }'; then
        ok "$name: plan $plan GiB, peak $peak GiB"
    else
        bad "$name: status $st, plan '$plan' GiB, peak '$peak' GiB: $(grep -m1 error "$W/$name.out")"
    fi
}
dry "0.5B bf16 dry run, auto"
[ ! -e "$W/dry" ] && ok "dry run: no run directory" || bad "dry run: a run directory was made"
dry "0.5B bf16 dry run, auto, activations of their own" DENSERL_SHARED_ACTIVATIONS=0

# not memory, but refused at the same point: a head dim the GPU's attention does not take
run head50 --set model.hidden_size=100
expect_eq "head dim 50 on the GPU: exit status" 2 $st
expect "head dim 50 on the GPU: says why" "head_dim 50 cannot run on the GPU" "$(cat "$W/head50.out")"
finish
