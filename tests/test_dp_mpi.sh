#!/usr/bin/env bash
# Data parallelism on the CPU with MPI: the quick demo run by 1, 2 and 3 ranks must leave the
# same checkpoints (SFT model, policy and PRM after RL) within 1e-5 relative, as must the
# outcome-only baseline without a PRM (rl.prm_update off) on 1 and 2 ranks, and ZeRO-1 must
# match ZeRO-0, ZeRO-2 ZeRO-1 (bit for bit with one call a mini-batch per rank, within 1e-5 with
# one-row calls on 3 ranks against 2), and gradients summed in buckets during the backward
# (grad_bucket_mb) must equal one sum at the update bit for bit; a rank that fails takes the
# whole job down.
# Skipped (77) without mpirun.
# The PRM's learning rate is lowered to the policy's: Adam's first step moves every weight by
# about lr whatever the size of its gradient, so float-order differences of 1e-6 in the SFT
# model flip the sign of near-zero gradients, and at lr 1e-3 that alone gives 3e-4.
# Usage: test_dp_mpi.sh path/to/denserl
set -u
BIN=$(realpath "$1")
command -v mpirun >/dev/null || { echo "SKIP mpirun not found"; exit 77; }
"$BIN" --help 2>&1 | grep -q train || { echo "FAIL denserl binary"; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export TMPDIR=$W/tmp # where ranks other than 0 keep their private run files
mkdir -p "$TMPDIR"
MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
common=(--set sft.steps=12 --set rl.steps=2 --set task.eval_size=12 --set rl.prompts_per_step=8
        --set rl.prm_lr=2e-5 --set threads=1)
fail=0
run() { # name np extra...
    local name=$1 np=$2; shift 2
    if [ "$np" = 1 ]; then
        "$BIN" train configs/demo.json "${common[@]}" --set run_dir="$W/$name" "$@" >"$W/$name.log" 2>&1
    else
        timeout 600 "${MPI[@]}" -np "$np" "$BIN" train configs/demo.json "${common[@]}" \
            --set run_dir="$W/$name" "$@" >"$W/$name.log" 2>&1
    fi || { tail -5 "$W/$name.log"; echo "FAIL run $name"; fail=1; }
}
run r1 1
run r2 2
run r3 3
run r2z 2 --set zero_stage=1
run r2z2 2 --set zero_stage=2 # gradients summed into their owners a layer at a time
# one-row calls: ZeRO-2 sums each call over the ranks, the ranks' calls unequal in number (the
# shorter ones pad with empty sums)
run r2zc 2 --set zero_stage=1 --set rl.micro_batch_rows=1
run r3z2c 3 --set zero_stage=2 --set rl.micro_batch_rows=1
run r2gz 2 --set zero_stage=1 --set rl.estimator=gae # a critic, with its own windows
run r2gz2 2 --set zero_stage=2 --set rl.estimator=gae
run r2w 2 --set grad_bucket_mb=0     # one gradient sum at the update
run r2s 2 --set grad_bucket_mb=0.05  # many small buckets started during the backward
run r1f 1 --set rl.prm_minibatches=1 # one PRM mini-batch: its update's forwards give logp_prm
run r2f 2 --set rl.prm_minibatches=1
off=(--set rl.estimator=rloo_outcome --set rl.prm_update=off) # no PRM, no reference forward
run r1o 1 "${off[@]}"
run r2o 2 "${off[@]}"
grep -q "2 ranks over mpi" "$W/r2.log" && echo "PASS the 2-rank run says so" ||
    { echo "FAIL no '2 ranks over mpi' line"; fail=1; }
python3 - "$W" "$(dirname "$0")" <<'PY' || fail=1
import sys
sys.path.insert(0, sys.argv[2])
from st_reldiff import reldiff
w = sys.argv[1]
bad = 0
for ref, other, tol in (("r1", "r2", 1e-5), ("r1", "r3", 1e-5), ("r2", "r2z", 1e-6),
                        ("r2z", "r2z2", 0), ("r2zc", "r3z2c", 1e-5), ("r2gz", "r2gz2", 0),
                        ("r2w", "r2", 0), ("r2w", "r2s", 0), ("r1f", "r2f", 1e-5),
                        ("r1o", "r2o", 1e-5)):
    for m in ("sft", "policy") + (("prm",) if ref != "r1o" else ()):
        rel = reldiff(f"{w}/{ref}/{m}/model.safetensors", f"{w}/{other}/{m}/model.safetensors")
        ok = rel <= tol
        bad += not ok
        print("PASS" if ok else "FAIL", f"{m} {ref} vs {other}: relative difference {rel:.2e} (<= {tol:g})")
sys.exit(1 if bad else 0)
PY
[ -z "$(ls -A "$TMPDIR")" ] && echo "PASS ranks other than 0 leave nothing behind" ||
    { echo "FAIL a rank left $(ls "$TMPDIR")"; fail=1; }
# a rank that fails (rank 0 cannot make its run directory) ends every rank, non-zero
timeout 300 "${MPI[@]}" -np 2 "$BIN" train configs/demo.json "${common[@]}" \
    --set run_dir=/proc/denserl-cannot-write >"$W/bad.log" 2>&1
rc=$?
if [ $rc != 0 ] && [ $rc != 124 ]; then echo "PASS a failing rank stops the job (exit $rc)"
else echo "FAIL a failing rank: exit $rc"; tail -5 "$W/bad.log"; fail=1; fi
exit $fail
