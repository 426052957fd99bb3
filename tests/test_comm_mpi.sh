#!/usr/bin/env bash
# The communicator with several ranks on this machine, through tests/comm_worker (built
# beside denserl): under mpirun with 2 and 3 ranks, and as 3 plain processes meeting in a
# rendezvous directory (the file transport). Sums must match the rank-order sum bit for bit,
# so MPI and the file transport give the same digest; a rank calling comm_abort, or a rank
# that never arrives, must end every rank non-zero within a timeout. The file part runs
# everywhere; without mpirun (or MPI in the build) the MPI part is skipped and, when the
# file part passed, the script exits 77.
# Usage: test_comm_mpi.sh path/to/denserl
set -u
BIN=$(realpath "$1")
WORKER=$(dirname "$BIN")/comm_worker
[ -x "$WORKER" ] || { echo "FAIL $WORKER not built (cmake --build builds it)"; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0; skipped=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
# every rank printed "N passed, 0 failed"; the digests of all ranks (and of $3, if given) agree
ranks_ok() { # log nranks
    [ "$(grep -c ' passed, 0 failed' "$1")" = "$2" ] && ! grep -q '^FAIL' "$1"
}
digest_of() { grep -o 'digest [0-9a-f]*' "$1" | sort -u; }
one_digest() { [ "$(digest_of "$1" | wc -l)" = 1 ]; }

# ---- file transport: plain background processes ----
file_run() { # name nranks mode... ; rank i's output in $W/name.i
    local name=$1 n=$2; shift 2
    mkdir -p "$W/rdv_$name"
    local pids=() i
    for ((i = 0; i < n; i++)); do
        DENSERL_RANK=$i DENSERL_WORLD_SIZE=${WORLD:-$n} DENSERL_RENDEZVOUS_DIR="$W/rdv_$name" \
            timeout 60 "$WORKER" file "$@" >"$W/$name.$i" 2>&1 &
        pids+=($!)
    done
    local rc=0
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        local r=$?
        echo "rc=$r" >>"$W/$name.rcs"
        [ $r = 0 ] || rc=1
    done
    cat "$W/$name".[0-9]* >"$W/$name.log"
    return $rc
}
all_failed() { # name nranks: every rank exited non-zero (and not by the 60 s timeout)
    [ "$(grep -c '^rc=[1-9]' "$W/$1.rcs")" = "$2" ] && ! grep -q '^rc=124' "$W/$1.rcs"
}

file_run f3 3 check 3
check "file transport, 3 ranks: sums bit-identical to the rank-order sum, reduce-scatter + allgather roundtrip for n not divisible by 3, f64 sum, max, flag and byte gathers, broadcasts, counters" $?
ranks_ok "$W/f3.log" 3 && one_digest "$W/f3.log"
check "file transport, 3 ranks: every rank passed and all hold the same sum" $?
left=$(ls -A "$W/rdv_f3")
[ -z "$left" ]
check "file transport: the rendezvous directory is left empty after comm_finalize ($left)" $?

DENSERL_COMM_ROUND_BYTES=4096 file_run f3small 3 check 3 && ranks_ok "$W/f3small.log" 3 &&
    [ "$(digest_of "$W/f3small.log")" = "$(digest_of "$W/f3.log")" ]
check "file transport, 3 ranks in rounds of 4 KiB (chunking): same results, same digest" $?
file_run f2 2 check 2 && ranks_ok "$W/f2.log" 2
check "file transport, 2 ranks" $?
cat "$W"/f3.log "$W"/f2.log | grep -v ' passed, 0 failed\|digest' | head -20

start=$SECONDS
file_run fab 3 abort 1
all_failed fab 3 && grep -q 'rank 1: worker asked to abort' "$W/fab.log" &&
    [ "$(grep -c 'stopping: rank 1 aborted the job' "$W/fab.log")" = 2 ] &&
    ! grep -q 'passed a barrier' "$W/fab.log"
check "file transport: comm_abort on rank 1 ends all 3 ranks non-zero, naming rank 1 ($((SECONDS - start)) s)" $?

start=$SECONDS
WORLD=3 DENSERL_COMM_TIMEOUT=2 file_run fto 2 wait
all_failed fto 2 && [ "$(grep -c 'rank 2 did not arrive' "$W/fto.log")" -ge 1 ] &&
    [ $((SECONDS - start)) -lt 30 ]
check "file transport: a rank that never arrives ends the others non-zero after DENSERL_COMM_TIMEOUT=2 ($((SECONDS - start)) s)" $?
grep -h 'rank' "$W/fab.log" "$W/fto.log" | head -6

# ---- MPI ----
if ! command -v mpirun >/dev/null; then
    echo "SKIP MPI part: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
    skipped=1
else
    MPIRUN=(mpirun --oversubscribe)
    [ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
    # shared-memory transport only, no ptrace-based single copy (refused in containers)
    MPIRUN+=(--mca btl self,vader --mca btl_vader_single_copy_mechanism none)
    if ! timeout 60 "${MPIRUN[@]}" -np 1 "$WORKER" mpi check 1 >"$W/m1.log" 2>&1; then
        if grep -q 'built without MPI' "$W/m1.log"; then
            echo "SKIP MPI part: comm_worker was built without MPI"
            skipped=1
        else
            check "mpirun -np 1 runs the worker" 1
            cat "$W/m1.log"
        fi
    else
        for np in 2 3; do
            timeout 120 "${MPIRUN[@]}" -np $np "$WORKER" mpi check $np >"$W/m$np.log" 2>&1
            rc=$?
            [ $rc = 0 ] && ranks_ok "$W/m$np.log" $np && one_digest "$W/m$np.log"
            check "mpirun -np $np: sums bit-identical to the rank-order sum, reduce-scatter + allgather roundtrip (n not divisible by $np), f64 sum, max, flags, broadcasts, counters" $?
            [ $rc = 0 ] || tail -20 "$W/m$np.log"
        done
        [ "$(digest_of "$W/m3.log")" = "$(digest_of "$W/f3.log")" ] &&
            [ "$(digest_of "$W/m2.log")" = "$(digest_of "$W/f2.log")" ]
        check "MPI and the file transport give the same bits for 2 and 3 ranks" $?
        DENSERL_COMM_ROUND_BYTES=4096 timeout 120 "${MPIRUN[@]}" -np 3 "$WORKER" mpi check 3 \
            >"$W/m3small.log" 2>&1 && ranks_ok "$W/m3small.log" 3 &&
            [ "$(digest_of "$W/m3small.log")" = "$(digest_of "$W/m3.log")" ]
        check "mpirun -np 3 in rounds of 4 KiB (chunking): same digest" $?

        start=$SECONDS
        timeout 60 "${MPIRUN[@]}" -np 3 "$WORKER" mpi abort 2 >"$W/mab.log" 2>&1
        rc=$?
        [ $rc != 0 ] && [ $rc != 124 ] && grep -q 'rank 2: worker asked to abort' "$W/mab.log" &&
            ! grep -q 'passed a barrier' "$W/mab.log"
        check "mpirun: comm_abort on rank 2 makes mpirun exit non-zero (rc $rc, $((SECONDS - start)) s)" $?
        grep 'rank 2' "$W/mab.log" | head -3
    fi
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ] || exit 1
# the file transport passed, but the MPI part did not run: report the test as skipped
[ $skipped = 0 ] || exit 77
exit 0
