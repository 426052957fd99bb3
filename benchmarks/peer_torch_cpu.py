"""PyTorch CPU peer for denserl's training throughput: times forward plus
backward of a transformers LlamaForCausalLM in float32 on the CPU, at a shape
given by flags, and prints one JSON line to set beside denserl's own number.

    python3 benchmarks/peer_torch_cpu.py [--threads N] [--iters 5] [--attn sdpa|eager]

Needs torch and transformers already installed; it installs nothing. The loss
is mean cross-entropy of every next token (positions 0..seq-2 predict 1..seq-1),
weights are random and untied, gradients are dropped between iterations and no
optimizer step is taken. tokens_per_s counts batch*seq tokens per iteration.
Two warm-up iterations are run and not timed.
"""

import argparse
import json
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=688)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse()
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    if args.iters < 1 or args.threads < 1:
        print("error: --iters and --threads must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.seq,
        tie_word_embeddings=False,
        use_cache=False,
    )
    config._attn_implementation = args.attn
    model = LlamaForCausalLM(config).to(torch.float32).train()
    params = sum(p.numel() for p in model.parameters())

    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g)
    inputs, targets = ids, ids[:, 1:].reshape(-1)

    def step():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=inputs, use_cache=False).logits  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, args.vocab), targets)
        loss.backward()
        return loss.item()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    dt = (time.perf_counter() - t0) / args.iters

    print(json.dumps({
        "peer": "torch",
        "tokens_per_s": round(args.batch * args.seq / dt, 1),
        "ms_per_iter": round(dt * 1e3, 2),
        "params": params,
        "threads": args.threads,
        "torch": torch.__version__,
        "attn": args.attn,
        "shape": {"vocab": args.vocab, "hidden": args.hidden, "layers": args.layers,
                  "heads": args.heads, "kv_heads": args.kv_heads,
                  "intermediate": args.intermediate, "batch": args.batch, "seq": args.seq},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
