#!/usr/bin/env bash
# Resume points (rl.save_every, train --resume): a run stopped after RL step 2 and resumed to
# step 4 ends with the same policy, PRM (and critic-driven) weights bit for bit and the same
# metrics lines as a run that went straight to step 4, with the rloo and gae estimators; and a
# resume that cannot work stops before any work with exit 2 and one error line naming the file.
# Usage: test_resume.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

common=(--set sft.steps=20 --set task.eval_size=8 --set rl.prompts_per_step=8
        --set rl.save_every=2 --set rl.eval_every=3 --set threads=1)

# same_run A B: the same weights and, timings aside, the same metrics lines
same_run() { python3 "$ROOT/tests/same_run.py" "$1" "$2"; }

# rloo, gae (a critic), and the outcome-only baseline with no PRM (rl.prm_update off)
for run in rloo gae off; do
    est=$run extra=()
    [ "$run" = off ] && est=rloo_outcome extra=(--set rl.prm_update=off)
    "$BIN" train configs/demo.json "${common[@]}" "${extra[@]}" --set rl.estimator=$est \
        --set rl.steps=4 --set run_dir="$W/straight_$run" >"$W/straight_$run.log" 2>&1 ||
        bad "$run: straight run failed: $(tail -3 "$W/straight_$run.log")"
    "$BIN" train configs/demo.json "${common[@]}" "${extra[@]}" --set rl.estimator=$est \
        --set rl.steps=2 --set run_dir="$W/resumed_$run" >"$W/first_$run.log" 2>&1 ||
        bad "$run: first half failed: $(tail -3 "$W/first_$run.log")"
    out=$("$BIN" train configs/demo.json "${common[@]}" "${extra[@]}" --set rl.estimator=$est \
        --set rl.steps=4 --set run_dir="$W/resumed_$run" --resume 2>&1)
    st=$?
    [ $st -eq 0 ] && ok "$run: resumed run exits 0" || bad "$run: resumed run exit $st: $out"
    expect "$run: says where it resumes" "after rl step 2 of 4" "$out"
    expect "$run: no SFT when resuming" "" "$(grep '^sft |' <<<"$out")"
    expect "$run: resumed = straight" "ok" "$(same_run "$W/straight_$run" "$W/resumed_$run" 2>&1)"
done
[ -d "$W/straight_off/policy" ] && [ ! -e "$W/straight_off/prm" ] &&
    ok "off: a policy checkpoint and no PRM" || bad "off: checkpoints $(ls "$W/straight_off")"

# SIGTERM during RL (a preemption notice): the step in progress finishes, a resume point is
# written, exit 128 + 15; the resumed run ends where the straight one does
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=8 --set rl.save_every=0 \
    --set run_dir="$W/sig_straight" >"$W/sig_straight.log" 2>&1 || bad "signal: straight run failed"
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=8 --set rl.save_every=0 \
    --set run_dir="$W/sig" >"$W/sig.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do # until two RL steps are in the metrics (flushed each step)
    n=$(grep -c '"phase":"rl"' "$W/sig/metrics.jsonl" 2>/dev/null)
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
st=$?
[ $st -eq 143 ] && ok "SIGTERM: exit 143" || bad "SIGTERM: exit $st: $(tail -3 "$W/sig.log")"
expect "SIGTERM: says how to go on" "stopped by signal 15 after rl step" "$(cat "$W/sig.log")"
[ -f "$W/sig/resume.safetensors" ] && ok "SIGTERM: resume point written" ||
    bad "SIGTERM: no resume point"
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=8 --set rl.save_every=0 \
    --set run_dir="$W/sig" --resume >"$W/sig2.log" 2>&1 || bad "SIGTERM: resume failed"
expect "SIGTERM: resumed = straight" "ok" "$(same_run "$W/sig_straight" "$W/sig" 2>&1)"

# two ranks (where mpirun exists): every rank reads the resume point rank 0 wrote
if command -v mpirun >/dev/null; then
    export TMPDIR=$W/tmp
    mkdir -p "$TMPDIR"
    MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none
         -np 2)
    [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 \
        --set run_dir="$W/mpi_straight" >"$W/mpi1.log" 2>&1 || bad "2 ranks: straight run failed"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=2 \
        --set run_dir="$W/mpi_resumed" >"$W/mpi2.log" 2>&1 || bad "2 ranks: first half failed"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 \
        --set run_dir="$W/mpi_resumed" --resume >"$W/mpi3.log" 2>&1 || bad "2 ranks: resume failed"
    expect "2 ranks: resumed = straight" "ok" \
        "$(same_run "$W/mpi_straight" "$W/mpi_resumed" 2>&1)"
    # ZeRO-1: each rank holds half of the AdamW moments, and the resume point holds them whole
    # (the straight run writes none, so that the gather's use of the gradient buffers is
    # tested too); the same point also resumes without ZeRO and on one rank
    z=(--set zero_stage=1)
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z[@]}" --set rl.steps=4 \
        --set rl.save_every=0 --set run_dir="$W/z_straight" >"$W/z1.log" 2>&1 ||
        bad "ZeRO-1: straight run failed: $(tail -3 "$W/z1.log")"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z[@]}" --set rl.steps=2 \
        --set run_dir="$W/z_resumed" >"$W/z2.log" 2>&1 ||
        bad "ZeRO-1: first half failed: $(tail -3 "$W/z2.log")"
    for d in z_zero0 z_one; do cp -r "$W/z_resumed" "$W/$d"; done
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z[@]}" --set rl.steps=4 \
        --set run_dir="$W/z_resumed" --resume >"$W/z3.log" 2>&1 ||
        bad "ZeRO-1: resume failed: $(tail -3 "$W/z3.log")"
    expect "ZeRO-1, 2 ranks: resumed = straight" "ok" \
        "$(same_run "$W/z_straight" "$W/z_resumed" 2>&1)"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=3 \
        --set run_dir="$W/z_zero0" --resume >"$W/z4.log" 2>&1 &&
        ok "ZeRO-1 resume point: resumes with zero_stage 0" ||
        bad "ZeRO-1 point, zero_stage 0: $(tail -3 "$W/z4.log")"
    "$BIN" train configs/demo.json "${common[@]}" --set rl.steps=3 --set run_dir="$W/z_one" \
        --resume >"$W/z5.log" 2>&1 && ok "ZeRO-1 resume point: resumes on one rank" ||
        bad "ZeRO-1 point, one rank: $(tail -3 "$W/z5.log")"
    # ZeRO-2: the gradients' windows serve as the gather's scratch; its point holds the same
    # whole moments, and with the demo's one call a mini-batch per rank its run is ZeRO-1's
    z2=(--set zero_stage=2)
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z2[@]}" --set rl.steps=2 \
        --set run_dir="$W/z2_resumed" >"$W/z6.log" 2>&1 ||
        bad "ZeRO-2: first half failed: $(tail -3 "$W/z6.log")"
    cp -r "$W/z2_resumed" "$W/z2_cross"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z2[@]}" --set rl.steps=4 \
        --set run_dir="$W/z2_resumed" --resume >"$W/z7.log" 2>&1 ||
        bad "ZeRO-2: resume failed: $(tail -3 "$W/z7.log")"
    expect "ZeRO-2, 2 ranks: resumed = the ZeRO-1 run straight on" "ok" \
        "$(same_run "$W/z_straight" "$W/z2_resumed" 2>&1)"
    "${MPI[@]}" "$BIN" train configs/demo.json "${common[@]}" "${z[@]}" --set rl.steps=4 \
        --set run_dir="$W/z2_cross" --resume >"$W/z8.log" 2>&1 ||
        bad "ZeRO-2 point, zero_stage 1: $(tail -3 "$W/z8.log")"
    expect "ZeRO-2 resume point, resumed with zero_stage 1 = straight" "ok" \
        "$(same_run "$W/z_straight" "$W/z2_cross" 2>&1)"
else
    echo "SKIP 2 ranks: mpirun not found"
fi

# bad resumes: exit 2, one error line naming the file, nothing run
mkdir -p "$W/empty"
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set run_dir="$W/empty" \
    --resume 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "nothing to resume: exit 2" || bad "nothing to resume: exit code"
expect "nothing to resume: says so" "nothing to resume" "$err"
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set model.hidden_size=96 \
    --set run_dir="$W/resumed_rloo" --resume 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "another model: exit 2" || bad "another model: exit code"
expect "another model: names the tensor" "resume.safetensors: tensor 'ref'" "$err"
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set rl.estimator=gae \
    --set run_dir="$W/resumed_rloo" --resume 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "critic mismatch: exit 2" || bad "critic mismatch: exit code"
expect "critic mismatch: says why" "needs one" "$err"
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set rl.estimator=rloo_outcome \
    --set run_dir="$W/resumed_off" --resume 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "PRM mismatch: exit 2" || bad "PRM mismatch: exit code"
expect "PRM mismatch: says why" "saved with rl.prm_update \"off\"" "$err"
printf 'not a safetensors file' >"$W/empty/resume.safetensors"
err=$("$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set run_dir="$W/empty" \
    --resume 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "broken resume file: exit 2" || bad "broken resume file: exit code"
expect "broken resume file: error line" "error: $W/empty/resume.safetensors" "$err"

finish
