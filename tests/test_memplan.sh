#!/usr/bin/env bash
# The memory plan on the CPU (the emulated GPU's run is tests/emu/memplan.sh): a run prints its
# plan; rl.micro_batch_rows "auto" takes every row where they fit and records the number it
# took; a setting whose run cannot fit the host is refused before any work, with one line that
# names the field and says how many rows would fit, or that none would, and exit status 2;
# --dry-run prints the plan and stops before any training or writing.
# Usage: test_memplan.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
cd "$ROOT"
quick=(--set sft.steps=2 --set rl.steps=1 --set task.eval_size=4 --set rl.prompts_per_step=4
       --set threads=1)

out=$("$BIN" train configs/demo.json "${quick[@]}" --set rl.micro_batch_rows='"auto"' \
      --set run_dir="$W/auto" 2>&1)
expect_eq "auto: the run finishes" 0 $?
expect "auto: the plan's line" 'memory plan: ' "$out"
expect "auto: every row fits" '16 of 16 rows per model call ("auto": the most that fit)' "$out"
took=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['rl']['micro_batch_rows'])" \
       "$W/auto/run_config.json" 2>&1)
expect_eq "auto: run_config.json records the rows taken" 16 "$took"

# --dry-run: the plan and the models made, then a stop with nothing trained or written
out=$("$BIN" train configs/demo.json "${quick[@]}" --set run_dir="$W/dry" --dry-run 2>&1)
expect_eq "dry run: exit status" 0 $?
expect "dry run: the plan's line" 'memory plan: ' "$out"
expect "dry run: says it stopped" 'dry run: nothing trained, nothing written' "$out"
if printf '%s\n' "$out" | grep -q "^rl "; then bad "dry run: it trained"; else ok "dry run: no step"; fi
[ ! -e "$W/dry" ] && ok "dry run: no run directory" || bad "dry run: a run directory was made"

# rl.prm_update off: no PRM is made, so the plan holds two copies of the weights (the policy
# and the reference) instead of three, and the policy's gradients and AdamW state alone: 12
# bytes a parameter against 20 where the PRM's gradients use the policy's buffer (AdamW's 8
# more), 24 where they have their own (DENSERL_SHARED_GRADS=0)
mib() { sed -n "s/.*$1 \([0-9.]*\) MiB.*/\1/p" <<<"$2"; }
off_out=$("$BIN" train configs/demo.json "${quick[@]}" --set run_dir="$W/dry" --dry-run \
    --set rl.estimator=rloo_outcome --set rl.prm_update=off 2>&1)
own_out=$(DENSERL_SHARED_GRADS=0 "$BIN" train configs/demo.json "${quick[@]}" \
    --set run_dir="$W/dry" --dry-run 2>&1)
w=$(mib weights "$out") w_off=$(mib weights "$off_out")
o=$(mib "gradients and AdamW" "$out") o_off=$(mib "gradients and AdamW" "$off_out")
o_own=$(mib "gradients and AdamW" "$own_out")
python3 -c "import sys; w, wo, o, oo, ow = map(float, sys.argv[1:]); sys.exit(abs(1.5 * wo - w) > 0.2 or abs(5 * oo - 3 * o) > 0.5 or abs(2 * oo - ow) > 0.2)" \
    "$w" "$w_off" "$o" "$o_off" "$o_own" 2>/dev/null &&
    ok "prm_update off: weights $w_off MiB (2/3 of $w), gradients and AdamW $o_off MiB (3/5 of $o, half of $o_own with the PRM's gradients its own)" ||
    bad "prm_update off: weights '$w_off' against '$w' MiB, gradients and AdamW '$o_off' against '$o' and '$o_own'"
# the PRM's gradients in the policy's buffer or in their own: the same run, bit for bit (every
# group kept, so that both models train in both steps)
two=("${quick[@]}" --set rl.steps=2 --set rl.acc_lo=0 --set rl.acc_hi=1)
"$BIN" train configs/demo.json "${two[@]}" --set run_dir="$W/g_shared" >/dev/null 2>&1 ||
    bad "shared gradients: run failed"
DENSERL_SHARED_GRADS=0 "$BIN" train configs/demo.json "${two[@]}" --set run_dir="$W/g_own" \
    >/dev/null 2>&1 || bad "gradients of its own: run failed"
expect "the PRM's gradients in the policy's buffer: the same run (metrics, weights)" "ok" \
    "$(python3 "$ROOT/tests/same_run.py" "$W/g_shared" "$W/g_own" 2>&1)"

# generation holds rl.generation_rows rows at once (128 here by default: 2 x 16 prompts x 4
# samples), and with several ranks each rank's share: on the CPU every generation term grows
# with the rows, so 32 rows plan a quarter, and each of 2 ranks half
gen=("${quick[@]}" --set rl.prompts_per_step=16 --set run_dir="$W/dry" --dry-run)
g=$(mib generation "$("$BIN" train configs/demo.json "${gen[@]}" 2>&1)")
g8=$(mib generation "$("$BIN" train configs/demo.json "${gen[@]}" --set rl.generation_rows=32 2>&1)")
python3 -c "import sys; g, g8 = map(float, sys.argv[1:]); sys.exit(abs(4 * g8 - g) > 0.02 * g)" \
    "$g" "$g8" 2>/dev/null && ok "generation_rows 32 of 128: generation $g8 MiB, a quarter of $g" ||
    bad "generation_rows 32: generation '$g8' against '$g' MiB"
# waves change no sample: 5 rows at a time give the run of all 32 at once
"$BIN" train configs/demo.json "${quick[@]}" --set rl.steps=2 --set run_dir="$W/g_all" \
    >/dev/null 2>&1 || bad "all rows at once: run failed"
"$BIN" train configs/demo.json "${quick[@]}" --set rl.steps=2 --set rl.generation_rows=5 \
    --set run_dir="$W/g_5" >/dev/null 2>&1 || bad "5 rows at once: run failed"
expect "generation_rows 5: the same run (metrics, weights)" "ok" \
    "$(python3 "$ROOT/tests/same_run.py" "$W/g_all" "$W/g_5" 2>&1)"
# and its slots ran fuller: finished rows' slots went to waiting rows (gen_slot_use), where
# all 32 at once leave the slots of short responses empty until the longest ends
use() { python3 -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "\"rl\"" in l]
print(round(sum(x["gen_slot_use"] for x in r) / len(r), 3))' "$W/$1/metrics.jsonl"; }
u_all=$(use g_all) u_5=$(use g_5)
python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (b > a and b > 0.7))" \
    "$u_all" "$u_5" && ok "slot use: $u_5 with 5 slots refilled, $u_all with all 32 at once" ||
    bad "slot use: '$u_5' with 5 slots against '$u_all'"
if command -v mpirun >/dev/null; then
    MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none
         -np 2)
    [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
    g2=$(mib generation "$(TMPDIR=$W "${MPI[@]}" "$BIN" train configs/demo.json "${gen[@]}" 2>&1)")
    python3 -c "import sys; g, g2 = map(float, sys.argv[1:]); sys.exit(abs(2 * g2 - g) > 0.02 * g)" \
        "$g" "$g2" 2>/dev/null && ok "2 ranks: each plans generation for its half ($g2 MiB)" ||
        bad "2 ranks: generation '$g2' against '$g' MiB on one"
else
    echo "SKIP 2 ranks: mpirun not found"
fi

# refused: exit 2, a single line, no run directory
refused() { # NAME WANT ARGS...
    local name=$1 want=$2
    shift 2
    local err
    err=$("$BIN" train configs/demo.json "$@" --set run_dir="$W/refused" 2>&1 >/dev/null)
    local st=$?
    expect_eq "$name: exit status" 2 $st
    expect "$name: says why" "$want" "$err"
    expect_eq "$name: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
    [ ! -e "$W/refused" ] && ok "$name: no run directory" || bad "$name: a run directory was made"
}
refused "a word that is not a setting" \
    "'rl.micro_batch_rows' must be an integer or one of auto" \
    --set rl.micro_batch_rows='"many"'
# about 100 GB of activations for whole mini-batches of 256 rows; one row needs under 1 GB
big=(--set model.hidden_size=1024 --set model.num_hidden_layers=8 --set model.num_attention_heads=8
     --set model.num_key_value_heads=4 --set model.intermediate_size=4096
     --set model.max_position_embeddings=512 --set rl.max_response_tokens=200
     --set rl.prompts_per_step=64 --set sft.steps=0 --set rl.steps=1)
refused "whole mini-batches beyond the host's memory" \
    "'rl.micro_batch_rows' 0 (calls of all 256 rows) needs" "${big[@]}"
refused "the same: how many rows fit" "rows fit (or set it to \"auto\")" "${big[@]}"
# a model whose weights alone exceed any host
refused "a model that fits at no size" "even at 1 row per model call" \
    --set model.hidden_size=32768 --set model.num_hidden_layers=64 \
    --set model.num_attention_heads=64 --set model.num_key_value_heads=8 \
    --set model.intermediate_size=65536 --set sft.steps=0 --set rl.steps=1
finish
