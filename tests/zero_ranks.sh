#!/usr/bin/env bash
# ZeRO on one GPU (real or emulated): two ranks started as plain processes that meet through
# the file transport (no mpirun needed), both on the machine's first GPU, their GPU buffers
# summed through the host (DENSERL_NCCL=0: NCCL cannot put two ranks on one device). bf16.
#   - zero_stage 1 with the fp32 master in ranges = the whole master on every rank, bit for bit
#     (metrics and checkpoints);
#   - zero_stage 2 with one call a mini-batch per rank = zero_stage 1, bit for bit;
#   - zero_stage 2 with 2-row calls (unequal calls on the ranks) within 1e-6 of zero_stage 1;
#   - zero_stage 3 (the reference's and the PRM's bf16 weights gathered a layer at a time)
#     = zero_stage 2.
# benchmarks/gpu_check.sh runs it through ctest (test_gpu_zero_ranks) on a GPU machine, where
# the kernels are the hardware's. Usage: zero_ranks.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
cd "$ROOT"
# the emulated tests' run (tests/emu/zero_master.sh), at 4 layers and 32-row calls
cp tests/zero_run.json "$W/run.json"
common=(--set model.num_hidden_layers=4 --set rl.micro_batch_rows=32)
export DENSERL_SAMPLE_GROUP_KEYS=4096 DENSERL_NCCL=0 DENSERL_COMM_TIMEOUT=120
"$BIN" train "$W/run.json" "${common[@]}" --set run_dir="$W/probe" --dry-run >"$W/probe.out" 2>&1
if [ $? = 2 ] && grep -q 'no GPU answered\|without CUDA' "$W/probe.out"; then
    echo "SKIP $(head -1 "$W/probe.out"): nothing checked"
    exit 77
fi
run() { # NAME ARGS...: both ranks, rank r's output in $W/NAME.r
    local name=$1 r pids=() st=0
    shift
    mkdir -p "$W/rdv_$name"
    for r in 0 1; do
        DENSERL_RANK=$r DENSERL_WORLD_SIZE=2 DENSERL_RENDEZVOUS_DIR="$W/rdv_$name" TMPDIR=$W \
            DENSERL_RUN_ID=$name timeout 600 "$BIN" train "$W/run.json" "${common[@]}" \
            --set run_dir="$W/$name" "$@" >"$W/$name.$r" 2>&1 &
        pids+=($!)
    done
    for r in 0 1; do wait "${pids[$r]}" || st=1; done
    [ $st -eq 0 ] || bad "$name: a rank failed: $(tail -3 "$W/$name.0" "$W/$name.1")"
}
run ranges
grep -q "2 ranks over file" "$W/ranges.0" && ok "two ranks over the file transport" ||
    bad "no '2 ranks over file' line: $(grep -m1 rank "$W/ranges.0")"
DENSERL_SHARDED_MASTER=0 run full
run z2 --set zero_stage=2
run z2c --set zero_stage=2 --set rl.micro_batch_rows=2
run z3c --set zero_stage=3 --set rl.micro_batch_rows=2
expect_eq "zero_stage 1: the master in ranges = the whole master" ok \
    "$(python3 tests/same_run.py "$W/full" "$W/ranges")"
expect_eq "zero_stage 2, one call a rank = zero_stage 1" ok \
    "$(python3 tests/same_run.py "$W/ranges" "$W/z2")"
expect_eq "zero_stage 2, 2-row calls: within 1e-6 of zero_stage 1 (checkpoints)" ok \
    "$(python3 tests/same_run.py --within 1e-6 "$W/ranges" "$W/z2c")"
expect_eq "zero_stage 3 (weights gathered by layer) = zero_stage 2" ok \
    "$(python3 tests/same_run.py "$W/z2c" "$W/z3c")"
finish
