#!/usr/bin/env bash
# run_dir/tensorboard: one TensorBoard event file that mirrors metrics.jsonl (SFT, its held-out
# loss, RL steps with their phases, held-out accuracy), each record's CRCs right
# (tests/tfevents_check.py, standard library only; with the tensorboard package importable,
# TensorBoard's own reader too). A resumed run, whose metrics are cut back to the resume
# point, makes the file again: each step once. "tensorboard": false writes none; a path that
# cannot be a directory is one error line and exit 2.
# Usage: test_tensorboard.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

common=(--set sft.steps=20 --set task.eval_size=8 --set rl.prompts_per_step=8 --set threads=1
        --set sft.eval_every=10 --set rl.eval_every=2)
tb_flag=()
python3 -c "import tensorboard" 2>/dev/null && tb_flag=(--tensorboard) ||
    echo "note: no tensorboard package here; the standard-library reader alone checks the files"
check() { python3 "$ROOT/tests/tfevents_check.py" "$1" "${tb_flag[@]}" 2>&1; }

"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=3 --set run_dir="$W/run" \
    >"$W/run.log" 2>&1 || bad "run failed: $(tail -3 "$W/run.log")"
expect_eq "event file = metrics.jsonl" ok "$(check "$W/run")"
expect_eq "the metrics mirrored hold every phase" "rl rl_eval sft sft_eval" \
    "$(grep -o '"phase":"[a-z_]*"' "$W/run/metrics.jsonl" | cut -d'"' -f4 | sort -u | xargs)"

# resumed from a point behind the metrics: steps 1-2, then 3, then again from 2 to 4
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=2 --set rl.save_every=2 \
    --set run_dir="$W/res" >"$W/res1.log" 2>&1 || bad "first part failed: $(tail -3 "$W/res1.log")"
cp "$W/res/resume.safetensors" "$W/point2.safetensors"
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=3 --set rl.save_every=2 \
    --set run_dir="$W/res" --resume >"$W/res2.log" 2>&1 || bad "second part failed"
cp "$W/point2.safetensors" "$W/res/resume.safetensors"
"$BIN" train configs/demo.json "${common[@]}" --set rl.steps=4 --set rl.save_every=2 \
    --set run_dir="$W/res" --resume >"$W/res3.log" 2>&1 || bad "third part failed"
expect_eq "resumed behind the metrics: event file = metrics.jsonl" ok "$(check "$W/res")"
expect_eq "resumed: RL steps 1 to 4, once each" "1 2 3 4" \
    "$(grep '"phase":"rl"' "$W/res/metrics.jsonl" | grep -o '"step":[0-9]*' | cut -d: -f2 | xargs)"
expect_eq "resumed: one event file, no temporary left" "1" "$(ls "$W/res/tensorboard" | wc -l)"

"$BIN" train configs/demo.json "${common[@]}" --set sft.steps=2 --set rl.steps=0 \
    --set tensorboard=false --set run_dir="$W/off" >"$W/off.log" 2>&1 || bad "off: run failed"
[ -f "$W/off/metrics.jsonl" ] && [ ! -e "$W/off/tensorboard" ] &&
    ok "tensorboard false: metrics and no event file" || bad "tensorboard false: $(ls "$W/off")"

mkdir -p "$W/blocked" && touch "$W/blocked/tensorboard"
out=$("$BIN" train configs/demo.json "${common[@]}" --set sft.steps=2 --set rl.steps=0 \
    --set run_dir="$W/blocked" 2>&1)
st=$?
expect_eq "tensorboard/ a file: exit 2" 2 "$st"
expect "tensorboard/ a file: the error names it" "error: $W/blocked/tensorboard:" "$out"
finish
