"""Log-probs of JSONL token sequences under a Hugging Face model directory, computed by
transformers in float64: the same output format as `denserl logprobs`.
Usage: python3 tests/hf_logprobs.py MODEL_DIR IN.jsonl OUT.jsonl"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    model_dir, inp, out = sys.argv[1:4]
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    model = model.double().eval()
    with open(inp) as f, open(out, "w") as g, torch.no_grad():
        for line in f:
            ids = torch.tensor([json.loads(line)["tokens"]])
            logits = model(ids).logits[0]
            lp = torch.log_softmax(logits, -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
            g.write(json.dumps({"logprobs": lp.tolist()}) + "\n")


if __name__ == "__main__":
    main()
