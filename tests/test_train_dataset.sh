#!/usr/bin/env bash
# `denserl train` with a dataset task (issue 6): PRIME on tests/fixtures/data/gsm8k_mini.jsonl
# with a tiny random Qwen2 model (written by `test_chat_dataset --make-model`, found beside the
# denserl binary) and the fixture BPE tokenizer. The model is random, so every outcome is 0
# and the accuracy filter is opened to [0, 1]: the checks are the exit code, two RL lines in
# metrics.jsonl, the report and the checkpoints. Then bad input: a missing train file, SFT
# steps with a dataset task, a random model with a dataset task, and a data file with too many
# bad lines must each give "error: ..." naming the problem, exit code 2, and no run directory.
# Usage: test_train_dataset.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"
need_helper

DATA="$ROOT/tests/fixtures/data/gsm8k_mini.jsonl"
"$HELPER" --make-model "$W/model" >/dev/null 2>&1 || { bad "make the test model"; exit 1; }
echo '{}' >"$W/c.json"
common=(--set task.name=gsm8k --set model.init="$W/model" --set task.train_data="$DATA"
    --set task.eval_data="$DATA" --set task.max_bad_fraction=0.5 --set task.eval_size=4
    --set sft.steps=0 --set rl.steps=2 --set rl.prompts_per_step=2 --set rl.samples_per_prompt=2
    --set rl.max_response_tokens=8 --set rl.acc_lo=0 --set rl.acc_hi=1 --set rl.ppo_minibatches=1
    --set task.suffix="Put the final answer after ####." --set threads=1)

"$BIN" train "$W/c.json" "${common[@]}" --set run_dir="$W/run" >"$W/out" 2>&1
rc=$?
expect_eq "gsm8k run exits 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$W/out"
expect_eq "metrics.jsonl has 2 rl lines" 2 "$(grep -c '"phase": *"rl"' "$W/run/metrics.jsonl" 2>/dev/null)"
for f in report.json run_config.json policy/config.json policy/model.safetensors \
    prm/model.safetensors; do
    if [ -s "$W/run/$f" ]; then ok "run dir has $f"; else bad "run dir has $f"; fi
done
# the checkpoints carry the starting model's tokenizer files, so that they load with their
# tokenizer elsewhere and in denserl's own eval
for d in sft policy prm; do
    for f in tokenizer.json tokenizer_config.json; do
        cmp -s "$W/model/$f" "$W/run/$d/$f" && ok "$d/ has the model's $f" ||
            bad "$d/ lacks the model's $f: $(ls "$W/run/$d")"
    done
done
python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try:
        json.loads(l)
        print(l, end="")
    except ValueError:
        pass' "$DATA" >"$W/good.jsonl"
"$BIN" eval --model "$W/run/policy" --data "$W/good.jsonl" --task gsm8k --max-new-tokens 8 \
    --limit 2 >"$W/eval.out" 2>&1 && ok "eval runs on the trained policy directory" ||
    bad "eval on the trained policy: $(tail -2 "$W/eval.out")"
expect "run_config records the task" '"name": "gsm8k"' \
    "$(tr -d '\n' <"$W/run/run_config.json" | sed 's/  */ /g')"
expect "eval uses the eval file" "greedy, 4 problems" "$(cat "$W/out")"

# the same run again gives the same metrics (the seed fixes the order and the samples)
"$BIN" train "$W/c.json" "${common[@]}" --set run_dir="$W/run2" >/dev/null 2>&1
strip() { sed 's/"t_[a-z_]*": *[0-9.e+-]*//g; s/"[a-z_]*_s": *[0-9.e+-]*//g; s/"s": *[0-9.e+-]*//g;
    s/"tokens_per_s": *[0-9.e+-]*//g' "$1" | grep '"rl"'; }
if [ "$(strip "$W/run/metrics.jsonl" | md5sum)" = "$(strip "$W/run2/metrics.jsonl" | md5sum)" ]; then
    ok "rerun gives the same rl metrics"
else
    bad "rerun gives the same rl metrics"
fi

# an evaluation alone (rl.steps 0): the policy's activations are not sized for the RL batch
# it never runs (512 rows of 451 tokens: about 1 GB on this tiny model, where the run needs
# about 0.25 GB), and the evaluation's prefill goes in chunks of the smaller capacity
rss=$(python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)' "$W/eout" \
    "$BIN" train "$W/c.json" "${common[@]}" --set rl.steps=0 --set rl.prompts_per_step=64 \
    --set rl.samples_per_prompt=8 --set rl.max_response_tokens=400 --set run_dir="$W/evalonly")
expect "evaluation alone: the held-out line" "held-out accuracy" "$(cat "$W/eout")"
expect "evaluation alone: the same problems" "greedy, 4 problems" "$(cat "$W/eout")"
if [ -n "$rss" ] && [ "$rss" -lt 600 ]; then
    ok "evaluation alone: peak memory $rss MB, not the RL batch's activations"
else
    bad "evaluation alone: peak memory '$rss' MB (want under 600: no activations for 512 RL rows)"
fi

# bad_case NAME WANT ARGS...: exit 2, the message holds WANT, no run directory
bad_case() {
    local name=$1 want=$2
    shift 2
    rm -rf "$W/bad"
    "$BIN" train "$W/c.json" "${common[@]}" --set run_dir="$W/bad" "$@" >"$W/bout" 2>&1
    local rc=$?
    expect_eq "$name: exit 2" 2 "$rc"
    expect "$name: message" "$want" "$(cat "$W/bout")"
    if [ -e "$W/bad" ]; then bad "$name: no run directory"; else ok "$name: no run directory"; fi
}
bad_case "missing train_data" "$W/nope.jsonl" --set task.train_data="$W/nope.jsonl"
bad_case "sft with gsm8k" "'sft.steps' must be 0" --set sft.steps=5
bad_case "random model with gsm8k" "needs 'model.init' to be a Hugging Face model directory" \
    --set model.init=random
bad_case "model dir without tokenizer" "tokenizer.json" --set model.init="$W"
# the fixture's line 6 is not JSON: with no bad lines allowed, the error names file and line
bad_case "bad data line" "gsm8k_mini.jsonl:6" --set task.max_bad_fraction=0
bad_case "unknown task" "task.name" --set task.name=mbpp

# task.max_prompt_tokens: longer prompts are skipped with a count (here 2 of the 7 good ones,
# so the eval set holds 5), and a limit no prompt fits is an error naming the field
out=$("$BIN" train "$W/c.json" "${common[@]}" --set rl.steps=1 --set task.eval_size=8 \
    --set task.max_prompt_tokens=65 --set run_dir="$W/short" 2>&1)
expect_eq "max_prompt_tokens 65: run exits 0" 0 "$?"
expect "max_prompt_tokens 65: says what it skipped" "skipped 2 prompts longer than 65 tokens" "$out"
expect "max_prompt_tokens 65: eval on the 5 that fit" "greedy, 5 problems" "$out"
bad_case "max_prompt_tokens no prompt fits" "every prompt is longer than task.max_prompt_tokens" \
    --set task.max_prompt_tokens=20

# task.name "custom": the fields named by task.prompt_field / task.answer_field, here a
# question under "prompt" and a bare number under "final" (DeepScaleR-style data)
python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try:
        j = json.loads(l)
    except ValueError:
        continue
    print(json.dumps({"prompt": j["question"], "final": int(j["answer"].split("####")[-1].replace(",", ""))}))
' "$DATA" >"$W/custom.jsonl"
out=$("$BIN" train "$W/c.json" "${common[@]}" --set rl.steps=1 --set task.name=custom \
    --set task.train_data="$W/custom.jsonl" --set task.eval_data="$W/custom.jsonl" \
    --set task.prompt_field=prompt --set task.answer_field=final --set task.max_bad_fraction=0 \
    --set run_dir="$W/custom" 2>&1)
expect_eq "custom fields: run exits 0 (no bad line allowed)" 0 "$?"
expect "custom fields: every line read, eval on the custom file" "greedy, 4 problems" "$out"
expect_eq "custom fields: one rl line" 1 "$(grep -c '"phase": *"rl"' "$W/custom/metrics.jsonl" 2>/dev/null)"
bad_case "custom without fields" "needs 'task.prompt_field' and 'task.answer_field'" \
    --set task.name=custom
bad_case "custom, a field the data lacks" "no 'query' field" --set task.name=custom \
    --set task.prompt_field=query --set task.answer_field=answer

# several eval files (benchmarks), separated by commas: task.eval_size items of each, every
# file's accuracy on the console and under "eval_sets" in the metrics (the same file twice gets
# "#2"), eval_accuracy their mean; the TensorBoard mirror holds them too
out=$("$BIN" train "$W/c.json" "${common[@]}" --set rl.steps=2 --set rl.eval_every=1 \
    --set task.eval_data="$DATA,$W/good.jsonl,$DATA" --set run_dir="$W/multi" 2>&1)
expect_eq "several eval files: run exits 0" 0 "$?"
expect "several eval files: 4 problems of each" "greedy, 12 problems" "$out"
expect "several eval files: each file's accuracy" "| gsm8k_mini 0.0%, good 0.0%, gsm8k_mini#2 0.0%" "$out"
expect_eq "several eval files: eval_sets in the metrics, eval_accuracy their mean" ok "$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("phase") == "rl_eval":
        s = j["eval_sets"]
        ok = list(s) == ["gsm8k_mini", "good", "gsm8k_mini#2"] and \
            abs(j["eval_accuracy"] - sum(s.values()) / 3) < 1e-9
        print("ok" if ok else l)' "$W/multi/metrics.jsonl" 2>&1)"
expect_eq "several eval files: the TensorBoard mirror" ok "$(python3 "$ROOT/tests/tfevents_check.py" "$W/multi")"
bad_case "an empty name among the eval files" "an empty file name" --set task.eval_data="$DATA,,$DATA"
bad_case "a missing eval file among several" "$W/nope.jsonl: no such readable file" \
    --set task.eval_data="$DATA,$W/nope.jsonl"

# task.name "verl": verl's RL data (PRIME's Eurus-2-RL-Data as JSONL), the prompt a list of
# chat messages and the answer at reward_model.ground_truth. Each message list here carries a
# long system message: with task.max_prompt_tokens 65, which 5 of the plain prompts fit, no
# prompt fits once its system message is in it; without the system messages they fit again.
python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try:
        j = json.loads(l)
    except ValueError:
        continue
    msgs = [{"role": "user", "content": j["question"]}]
    if sys.argv[2] == "system":
        msgs.insert(0, {"role": "system", "content": "Think it through carefully. " * 12})
    print(json.dumps({"data_source": "gsm8k", "prompt": msgs, "ability": "math",
                      "reward_model": {"ground_truth": j["answer"].split("####")[-1].strip(),
                                       "style": "rule"}}))
' "$DATA" system >"$W/verl.jsonl"
verl=(--set task.name=verl --set task.train_data="$W/verl.jsonl" --set task.eval_data="$W/verl.jsonl"
    --set task.max_bad_fraction=0 --set rl.steps=1)
out=$("$BIN" train "$W/c.json" "${common[@]}" "${verl[@]}" --set run_dir="$W/verl" 2>&1)
expect_eq "verl: run exits 0 (no bad line allowed)" 0 "$?"
expect "verl: every line read, eval on the verl file" "greedy, 4 problems" "$out"
expect_eq "verl: one rl line" 1 "$(grep -c '"phase": *"rl"' "$W/verl/metrics.jsonl" 2>/dev/null)"
bad_case "verl: the system messages are in the prompts" \
    "every prompt is longer than task.max_prompt_tokens" "${verl[@]}" --set task.max_prompt_tokens=65
sed 's/{"role": "system", "content": "[^"]*"}, //' "$W/verl.jsonl" >"$W/verl_user.jsonl"
out=$("$BIN" train "$W/c.json" "${common[@]}" "${verl[@]}" --set task.max_prompt_tokens=65 \
    --set task.train_data="$W/verl_user.jsonl" --set task.eval_data="$W/verl_user.jsonl" \
    --set task.eval_size=8 --set run_dir="$W/verl_user" 2>&1)
expect "verl: without them the same prompts fit" "skipped 2 prompts longer than 65 tokens" "$out"
"$BIN" eval --model "$W/run/policy" --data "$W/verl.jsonl" --task verl --max-new-tokens 8 \
    --limit 2 >"$W/veval.out" 2>&1 && ok "verl: eval reads it" ||
    bad "verl: eval: $(tail -2 "$W/veval.out")"
# eval formats each item with its own system message too: one the model's context of 512
# cannot hold is an error naming the line
sed '2,$d; s/\(Think it through carefully. \)\{12\}/&&&&&&&&&&&&/' "$W/verl.jsonl" >"$W/verl_long.jsonl"
out=$("$BIN" eval --model "$W/run/policy" --data "$W/verl_long.jsonl" --task verl \
    --max-new-tokens 8 2>&1)
expect_eq "verl: eval, a system message past the context: exit 2" 2 "$?"
expect "verl: eval, a system message past the context: names the line" \
    "verl_long.jsonl:1: the prompt needs more than the model's context" "$out"

# the shipped real-data config (configs/prime_math.json) is whole: with the test model and
# data in place of the paths it names, and on this CPU, it passes --dry-run
out=$("$BIN" train "$ROOT/configs/prime_math.json" --set model.init="$W/model" \
    --set task.train_data="$ROOT/tests/fixtures/data/math_mini.jsonl" \
    --set task.eval_data="$ROOT/tests/fixtures/data/math_mini.jsonl" --set task.eval_size=4 \
    --set task.max_bad_fraction=0.5 --set precision=fp32 --set device=cpu \
    --set rl.max_response_tokens=256 --set threads=1 --dry-run 2>&1)
rc=$?
expect_eq "configs/prime_math.json: --dry-run exits 0" 0 "$rc"
expect "configs/prime_math.json: plans its calls" "memory plan:" "$out"

finish
