#!/usr/bin/env bash
# Checkpoints that denserl writes load in transformers unchanged and give the same
# log-probs. Skipped (77) where torch + transformers are not installed.
# Usage: test_hf_export.sh path/to/denserl
set -u
BIN=$(realpath "$1")
if ! python3 -c "import torch, transformers" 2>/dev/null; then
    echo "SKIPPED: torch and transformers are not installed (pip install torch transformers)"
    exit 77
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0
seqs() { python3 -c '
import json, random
r = random.Random(5)
for n in (2, 9, 30, 47):
    print(json.dumps({"tokens": [r.randrange(32) for _ in range(n)]}))' >"$W/in.jsonl"; }
seqs
one() { # name dtype extra-set...
    local name=$1 dtype=$2; shift 2
    "$BIN" train configs/demo.json --set run_dir="$W/$name" --set sft.steps=3 --set sft.batch_size=4 \
        --set task.eval_size=4 --set model.hidden_size=32 --set model.num_hidden_layers=2 \
        --set model.num_attention_heads=4 --set model.intermediate_size=48 \
        --set rl.steps=0 --set checkpoint_dtype="$dtype" "$@" >/dev/null 2>&1 &&
    "$BIN" logprobs --model "$W/$name/sft" --data "$W/in.jsonl" --out "$W/$name.ours" &&
    python3 tests/hf_logprobs.py "$W/$name/sft" "$W/in.jsonl" "$W/$name.hf" 2>"$W/$name.err" &&
    python3 tests/compare_logprobs.py "$W/$name.ours" "$W/$name.hf" --tol 1e-4
    if [ $? -eq 0 ]; then pass=$((pass + 1)); echo "PASS $name"; else fail=$((fail + 1)); echo "FAIL $name"; tail -n 3 "$W/$name.err" 2>/dev/null; fi
}
one llama_f32 f32
one llama_bf16 bf16
one qwen2_tied_f32 f32 --set model.model_type=qwen2 --set model.tie_word_embeddings=true
one mistral_bf16 bf16 --set model.model_type=mistral
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
