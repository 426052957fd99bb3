#!/usr/bin/env bash
# Checkpoints during the RL phase (rl.checkpoint_every, rl.keep_checkpoints): the policy and
# the PRM after step N, in Hugging Face layout under run_dir/checkpoints/step_NNNNNN/, are
# byte for byte those a run that stops at step N leaves in policy/ and prm/; the last step's
# equal the final ones; rl.keep_checkpoints keeps the newest; and a checkpoint loads in
# `denserl logprobs`.
# Usage: test_checkpoints.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

common=(--set sft.steps=20 --set task.eval_size=8 --set rl.prompts_per_step=8 --set threads=1)
run() { # name settings...
    local name=$1
    shift
    "$BIN" train configs/demo.json "${common[@]}" --set run_dir="$W/$name" "$@" \
        >"$W/$name.log" 2>&1 || bad "$name: run failed: $(tail -3 "$W/$name.log")"
}
run two --set rl.steps=2
run all --set rl.steps=4 --set rl.checkpoint_every=2
run kept --set rl.steps=5 --set rl.checkpoint_every=2 --set rl.keep_checkpoints=2

expect_eq "every 2 of 4 steps: two checkpoints" "step_000002 step_000004" \
    "$(ls "$W/all/checkpoints" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "every 2 of 5 steps, 2 kept: the last step's and the one before" \
    "step_000004 step_000005" "$(ls "$W/kept/checkpoints" | tr '\n' ' ' | sed 's/ $//')"
same() { cmp -s "$1/model.safetensors" "$2/model.safetensors" && cmp -s "$1/config.json" "$2/config.json"; }
for m in policy prm; do
    same "$W/all/checkpoints/step_000002/$m" "$W/two/$m" &&
        ok "$m after step 2 = a run of 2 steps" || bad "$m after step 2 differs from a 2-step run"
    same "$W/all/checkpoints/step_000004/$m" "$W/all/$m" &&
        ok "$m after the last step = the final $m/" || bad "$m after step 4 differs from $m/"
done
same "$W/all/checkpoints/step_000002/policy" "$W/all/policy" &&
    bad "step 2 and step 4 policies are the same (the check above could not fail)" ||
    ok "the policy changes between checkpoints"
expect "a progress line per checkpoint" "checkpoint | rl step 2 |" "$(cat "$W/all.log")"
printf '{"tokens": [1, 5, 7, 9, 2]}\n' >"$W/seq.jsonl"
"$BIN" logprobs --model "$W/all/checkpoints/step_000002/policy" --data "$W/seq.jsonl" \
    --out "$W/lp.jsonl" >"$W/lp.log" 2>&1 && ok "a checkpoint loads in denserl logprobs" ||
    bad "logprobs on a checkpoint: $(tail -2 "$W/lp.log")"

finish
