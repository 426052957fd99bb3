#!/usr/bin/env bash
# On the emulated GPU, two ranks under mpirun, bf16 and zero_stage 1: each trained model keeps
# only its rank's range of the fp32 master weights (model_shard_master), and the run is the
# one that keeps all of them on every rank (DENSERL_SHARDED_MASTER=0) bit for bit: metrics,
# and the policy and PRM checkpoints, which gather the ranges; its memory plan covers its
# peak, below the other's; a resume point written and read with the ranges gives the run that
# went straight on. zero_stage 2 (the gradients summed into their owners a layer at a time,
# model_shard_grads): with one call a mini-batch per rank the same run as zero_stage 1 bit for
# bit, with several calls and ranks of unequal calls within 1e-6 of it; its plan covers its
# peak. zero_stage 3 (the bf16 weights of the reference and the PRM in ranges too,
# MODEL_W16_SHARDED): the same run as stage 2, at a lower peak its plan covers; its resume
# point gives the run that went straight on. Skips without mpirun.
# Usage: zero_master.sh path/to/denserl
set -u
source "$(dirname "$0")/../shtest.sh"
cd "$ROOT"
if ! command -v mpirun >/dev/null; then
    echo "SKIP mpirun not found: nothing checked"
    exit 77
fi
MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none -np 2)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
export DENSERL_SAMPLE_GROUP_KEYS=4096 DENSERL_EMU_PEAK=1
# bf16 on the emulated GPU, the layers' matrices well over the embedding's, as in real models
# (what the ranges save); shared with tests/zero_ranks.sh
cp tests/zero_run.json "$W/run.json"
run() { # NAME ARGS...: status in $st, output in $W/NAME.out
    local name=$1
    shift
    TMPDIR=$W "${MPI[@]}" "$BIN" train "$W/run.json" --set run_dir="$W/$name" "$@" \
        >"$W/$name.out" 2>&1
    st=$?
    [ $st -eq 0 ] || bad "$name: the run failed: $(tail -3 "$W/$name.out")"
}
mib() { # plan | peak, of $W/NAME.out
    if [ "$1" = plan ]; then
        sed -n 's/^memory plan: \([0-9.]*\) MiB.*/\1/p' "$W/$2.out"
    else
        sed -n 's/^emu: device peak \([0-9]*\) bytes/\1/p' "$W/$2.out" |
            awk '{printf "%.1f", $1 / 1048576}'
    fi
}
run sharded
DENSERL_SHARDED_MASTER=0 run whole
expect_eq "the master in ranges: the same run as whole on every rank" ok \
    "$(python3 tests/same_run.py "$W/sharded" "$W/whole")"
ps=$(mib plan sharded) ks=$(mib peak sharded) pw=$(mib plan whole) kw=$(mib peak whole)
awk -v p="$ps" -v k="$ks" -v kw="$kw" 'BEGIN { exit !(p != "" && p >= k && k < kw) }' &&
    ok "ranges: plan $ps MiB covers the peak $ks MiB, below $kw MiB with the whole master" ||
    bad "ranges: plan '$ps' MiB, peak '$ks' MiB, whole master's peak '$kw' MiB"
awk -v p="$pw" -v k="$kw" 'BEGIN { exit !(p != "" && p >= k) }' &&
    ok "whole master: plan $pw MiB covers the peak $kw MiB" ||
    bad "whole master: plan '$pw' MiB, peak '$kw' MiB"
# a resume point after step 1, read back by two ranks with ranges, gives step 2 as above
run first --set rl.steps=1 --set rl.save_every=1
cp -r "$W/first" "$W/resumed"
run resumed --set rl.save_every=1 --resume
run straight --set rl.save_every=1
expect_eq "resumed with the master in ranges = straight on" ok \
    "$(python3 tests/same_run.py "$W/straight" "$W/resumed")"
# zero_stage 2: one call a mini-batch on each rank (32-row calls) sums each element once, in
# rank order, as zero_stage 1 does at the update
run z1 --set rl.micro_batch_rows=32
run z2 --set rl.micro_batch_rows=32 --set zero_stage=2
expect_eq "zero_stage 2, one call a rank: the same run as zero_stage 1" ok \
    "$(python3 tests/same_run.py "$W/z1" "$W/z2")"
p2=$(mib plan z2) k2=$(mib peak z2)
awk -v p="$p2" -v k="$k2" 'BEGIN { exit !(p != "" && p >= k) }' &&
    ok "zero_stage 2: plan $p2 MiB covers the peak $k2 MiB" ||
    bad "zero_stage 2: plan '$p2' MiB, peak '$k2' MiB"
# 2-row calls: each rank sums over its calls after the ranks' sums (the other order), and the
# token-balanced split gives the ranks unequal calls, the shorter one padding with empty sums
run zm2 --set rl.micro_batch_rows=2 --set zero_stage=2
expect_eq "zero_stage 2, 2-row calls: within 1e-6 of zero_stage 1 (checkpoints)" ok \
    "$(python3 tests/same_run.py --within 1e-6 "$W/sharded" "$W/zm2")"
grep -q "2 of 32 rows per model call" "$W/zm2.out" && ok "zero_stage 2: 2-row calls planned" ||
    bad "zero_stage 2: $(grep 'memory plan' "$W/zm2.out")"
# zero_stage 3: the reference's and the PRM's bf16 weights in ranges, gathered a layer at a
# time for their forwards and backwards (the ranks' unequal calls padded with gathers alone):
# the same bits as stage 2
run zm3 --set rl.micro_batch_rows=2 --set zero_stage=3
expect_eq "zero_stage 3 = zero_stage 2" ok "$(python3 tests/same_run.py "$W/zm2" "$W/zm3")"
p3=$(mib plan zm3) k3=$(mib peak zm3) k2=$(mib peak zm2)
awk -v p="$p3" -v k="$k3" -v k2="$k2" 'BEGIN { exit !(p != "" && p >= k && k < k2) }' &&
    ok "zero_stage 3: plan $p3 MiB covers the peak $k3 MiB, below stage 2's $k2 MiB" ||
    bad "zero_stage 3: plan '$p3' MiB, peak '$k3' MiB, stage 2's peak '$k2' MiB"
# a resume point of stage 3 (the reference's matrices gathered into it) gives the run that
# went straight on
run zfirst --set rl.steps=1 --set rl.save_every=1 --set zero_stage=3
cp -r "$W/zfirst" "$W/zresumed"
run zresumed --set rl.save_every=1 --set zero_stage=3 --resume
run zstraight --set rl.save_every=1 --set zero_stage=3
expect_eq "zero_stage 3: resumed = straight on" ok \
    "$(python3 tests/same_run.py "$W/zstraight" "$W/zresumed")"
# a model whose layers outweigh all else (16 layers of 1024, vocabulary 2048), made and not
# trained (--dry-run, allocations untouched): while the step's models are made the peak stays
# within the plan, with the policy's activations or each model's own. A PRM and reference made
# whole and then cut down held about 800 MiB over it.
sed 's/"hidden_size": 128/"hidden_size": 1024/; s/"num_hidden_layers": 8/"num_hidden_layers": 16/;
     s/"intermediate_size": 512/"intermediate_size": 4096/; s/"num_attention_heads": 2/"num_attention_heads": 16/;
     s/"num_key_value_heads": 1/"num_key_value_heads": 4/' "$W/run.json" >"$W/big.json"
for case in "1 1" "0 1" "1 2" "1 3"; do
    set -- $case
    TMPDIR=$W DENSERL_EMU_LAZY=1 DENSERL_SHARED_ACTIVATIONS=$1 "${MPI[@]}" "$BIN" train \
        "$W/big.json" --set run_dir="$W/big" --set rl.micro_batch_rows=2 --set zero_stage=$2 \
        --dry-run >"$W/big$1$2.out" 2>&1
    st=$?
    p=$(mib plan "big$1$2") k=$(mib peak "big$1$2")
    if [ $st -eq 0 ] && awk -v p="$p" -v k="$k" 'BEGIN { exit !(p != "" && p >= k) }'; then
        ok "models made (shared activations $1, zero_stage $2): peak $k MiB within the plan's $p MiB"
    else
        bad "models made (shared activations $1, zero_stage $2): status $st, plan '$p' MiB, peak '$k' MiB"
    fi
done
k1=$(mib peak big11) k2=$(mib peak big12) k3=$(mib peak big13)
awk -v a="$k1" -v b="$k2" -v c="$k3" 'BEGIN { exit !(a != "" && b != "" && c != "" && c < b && b < a) }' &&
    ok "models made: peaks $k1, $k2, $k3 MiB at zero_stage 1, 2, 3" ||
    bad "models made: peaks '$k1', '$k2', '$k3' MiB at zero_stage 1, 2, 3"
finish
