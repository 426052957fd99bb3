"""PyTorch peer for `denserl bench`: one PRIME step as a plain Python stack runs it.

    python3 benchmarks/peer_torch.py [--shape qwen2.5-0.5b] [--prompts 64] [--samples 4]
        [--response-len 512] [--prompt-len 13] [--micro-batch 8] [--ppo-minibatches 4]
        [--device cuda] [--dtype bf16|fp32] [--warmup 1] [--steps 3] [--json OUT.json]
        [--response-lens LENS.json]

Three transformers Qwen2ForCausalLM models (policy, frozen reference, implicit PRM),
randomly initialised from a config of the named shape (or --model-config PATH to an HF
config.json), SDPA attention. Per step, timed phase by phase (the GPU is synchronised at
each phase boundary):

  generate       HF generate() of P x K rows, sampling at temperature 1, exactly
                 --response-len new tokens per row (no end token), KV cache
  logprobs       reference, policy (with entropy) and PRM forwards in micro-batches:
                 full logits -> log_softmax -> gather of the next token
  prm_update     PRM forward + backward in micro-batches; the implicit PRM loss: sequence
                 score s = beta * sum over response tokens of (logp_prm - logp_ref),
                 binary cross-entropy of s (as a logit) against the outcome; AdamW step
  advantages     token rewards beta * (logp_prm - logp_ref), RLOO over the K samples of
                 each prompt for outcome and process rewards, returns, whitening
  policy_update  PPO clipped loss (token mean) over --ppo-minibatches mini-batches, each
                 forward + backward in micro-batches and one AdamW step (grad clip 1.0)

Outcomes are random 0/1 (there is no verifier here). With --dtype bf16 (the default on
CUDA) the trained models keep fp32 master weights and run under torch.autocast(bfloat16),
as denserl's "precision": "bf16" does; the frozen reference is held in bf16. Tokens per
second count the tokens each model pass runs, as denserl counts them: generate = sampled
tokens, logprobs = 3 x N x T (three forwards; denserl runs two where its PRM update's
forwards give the PRM's log-probs), prm_update and advantages = N x T, policy_update = N x T
(one PPO epoch); bench_compare.py's training side compares the three phases together. Prints one JSON
object (also written to --json). Installs nothing: needs torch and transformers present
(exit code 3 when they are not; 2 for bad arguments).
"""

import argparse
import contextlib
import copy
import json
import sys
import time

SHAPES = {
    # vocab, hidden, layers, heads, kv heads, intermediate, tied
    "qwen2.5-0.5b": (151936, 896, 24, 14, 2, 4864, True),
    "qwen2.5-1.5b": (151936, 1536, 28, 12, 2, 8960, True),
    "qwen2.5-7b": (152064, 3584, 28, 28, 4, 18944, False),
    "tiny": (64, 32, 2, 4, 2, 64, False),
}
PHASES = ("generate", "logprobs", "prm_update", "advantages", "policy_update")


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    p.add_argument("--model-config", help="an HF config.json (overrides --shape)")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--response-len", type=int, default=512)
    p.add_argument("--prompt-len", type=int, default=13)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--response-lens", help="JSON file: a list of one response length per row "
                   "(at most --response-len); the training phases then take each row's own "
                   "length and pad each micro-batch to its longest row, as a data collator does")
    p.add_argument("--ppo-minibatches", type=int, default=4)
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="default: bf16 on cuda, else fp32")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args()
    for k in ("prompts", "samples", "response_len", "prompt_len", "micro_batch",
              "ppo_minibatches", "steps"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if a.samples < 2:
        p.error("--samples must be at least 2 (RLOO leaves one out)")
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    a.lens = None
    if a.response_lens:
        try:
            with open(a.response_lens) as f:
                a.lens = [int(x) for x in json.load(f)]
        except (OSError, ValueError, TypeError) as e:
            p.error(f"--response-lens {a.response_lens}: a JSON list of integers expected ({e})")
        if len(a.lens) != a.prompts * a.samples or not all(0 <= x <= a.response_len
                                                            for x in a.lens):
            p.error(f"--response-lens {a.response_lens}: {a.prompts * a.samples} lengths in "
                    f"[0, {a.response_len}] expected, got {len(a.lens)}")
    return a


def make_config(args, Qwen2Config):
    if args.model_config:
        with open(args.model_config) as f:
            raw = json.load(f)
        keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "intermediate_size", "tie_word_embeddings",
                "rope_theta", "rms_norm_eps", "head_dim")
        kw = {k: raw[k] for k in keys if k in raw}
    else:
        v, d, layers, heads, kv, ff, tied = SHAPES[args.shape]
        kw = dict(vocab_size=v, hidden_size=d, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=ff,
                  tie_word_embeddings=tied, rope_theta=1e6, rms_norm_eps=1e-6)
    cfg = Qwen2Config(**kw, max_position_embeddings=args.prompt_len + args.response_len + 8,
                      use_sliding_window=False, bos_token_id=None, eos_token_id=None,
                      pad_token_id=0)
    cfg._attn_implementation = "sdpa"
    return cfg


def main():
    args = parse()
    try:
        import torch
        import torch.nn.functional as F
        import transformers
        from transformers import Qwen2Config, Qwen2ForCausalLM
    except ImportError as e:
        print(f"error: torch and transformers are needed (nothing is installed here): {e}",
              file=sys.stderr)
        return 3

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("bf16" if cuda else "fp32")
    bf16 = dtype == "bf16"
    torch.manual_seed(args.seed)
    try:
        cfg = make_config(args, Qwen2Config)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: --model-config {args.model_config}: {e}", file=sys.stderr)
        return 2
    V = cfg.vocab_size

    def amp():
        if not bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)

    with dev:
        policy = Qwen2ForCausalLM(cfg).float()
    policy.generation_config.eos_token_id = None
    policy.generation_config.pad_token_id = 0
    prm = copy.deepcopy(policy)
    ref = copy.deepcopy(policy).eval()
    if bf16:
        ref = ref.to(torch.bfloat16)
    for p in ref.parameters():
        p.requires_grad_(False)
    opt_policy = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0)
    opt_prm = torch.optim.AdamW(prm.parameters(), lr=1e-6, weight_decay=0.0)
    n_params = sum(p.numel() for p in policy.parameters())

    P, K, R, L0, mb = args.prompts, args.samples, args.response_len, args.prompt_len, args.micro_batch
    N, T = P * K, args.prompt_len + args.response_len
    lens = torch.tensor(args.lens, device=dev) if args.lens else None
    NT = N * T if not args.lens else sum(L0 + x for x in args.lens)  # the rows' tokens
    beta = args.beta
    gen = torch.Generator(device=dev).manual_seed(args.seed)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def token_logp(model, ids, want_entropy=False):
        """(rows, T-1) log-probs of ids[:, 1:], optional entropy, from full logits."""
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        logp_all = torch.log_softmax(logits, dim=-1)
        lp = torch.gather(logp_all, -1, ids[:, 1:, None]).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1) if want_entropy else None
        return lp, ent

    def cols(s, e):
        """Columns of rows s..e-1 in a micro-batch: all, or up to its longest row."""
        return T if not args.lens else L0 + int(lens[s:e].max())

    def pad_to(x, width):
        return F.pad(x, (0, width - x.shape[1]))

    def forward_all(model, ids, want_entropy=False):
        outs, ents = [], []
        with torch.no_grad(), amp():
            for s in range(0, N, mb):
                c = cols(s, min(s + mb, N))
                lp, ent = token_logp(model, ids[s:s + mb, :c], want_entropy)
                outs.append(pad_to(lp, T - 1))
                if ent is not None:
                    ents.append(pad_to(ent, T - 1))
        return torch.cat(outs), (torch.cat(ents) if ents else None)

    def step():
        t = {}
        prompts = torch.randint(3, V, (P, L0), device=dev, generator=gen)
        prompts = prompts.repeat_interleave(K, dim=0)
        sync()
        t0 = time.perf_counter()
        with torch.no_grad(), amp():
            ids = policy.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts),
                                  do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                  max_new_tokens=R, min_new_tokens=R, use_cache=True)
        sync()
        t["generate"] = time.perf_counter() - t0
        assert ids.shape == (N, T), ids.shape
        mask = torch.zeros(N, T - 1, device=dev)
        mask[:, L0 - 1:] = 1.0  # predictions of the response tokens
        if args.lens:  # each row's own response length; positions past it are padding
            pos = torch.arange(T - 1, device=dev)[None, :]
            mask *= (pos < L0 - 1 + lens[:, None]).float()
        outcome = torch.randint(0, 2, (N,), device=dev, generator=gen).float()

        t0 = time.perf_counter()
        logp_ref, _ = forward_all(ref, ids)
        logp_old, _ = forward_all(policy, ids, want_entropy=True)
        logp_prm, _ = forward_all(prm, ids)
        sync()
        t["logprobs"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        opt_prm.zero_grad(set_to_none=True)
        for s in range(0, N, mb):
            c = cols(s, min(s + mb, N))
            with amp():
                lp, _ = token_logp(prm, ids[s:s + mb, :c])
            score = beta * ((lp - logp_ref[s:s + mb, :c - 1]) * mask[s:s + mb, :c - 1]).sum(-1)
            loss = F.binary_cross_entropy_with_logits(score, outcome[s:s + mb],
                                                      reduction="sum") / N
            loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        opt_prm.step()
        sync()
        t["prm_update"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            reward = beta * (logp_prm - logp_ref) * mask
            r = reward.view(P, K, T - 1)
            proc = r - (r.sum(1, keepdim=True) - r) / (K - 1)
            o = outcome.view(P, K)
            out = o - (o.sum(1, keepdim=True) - o) / (K - 1)
            last = torch.zeros_like(proc)
            last[..., -1] = out
            comb = (proc + last).reshape(N, T - 1) * mask
            returns = comb.flip(-1).cumsum(-1).flip(-1)
            valid = returns[mask > 0]
            adv = (returns - valid.mean()) / (valid.std() + 1e-8) * mask
        sync()
        t["advantages"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        M = min(args.ppo_minibatches, N)
        for k in range(M):
            r0, r1 = N * k // M, N * (k + 1) // M
            n_tok = mask[r0:r1].sum()
            opt_policy.zero_grad(set_to_none=True)
            for s in range(r0, r1, mb):
                e = min(s + mb, r1)
                c = cols(s, e)
                with amp():
                    lp, _ = token_logp(policy, ids[s:e, :c])
                ratio = torch.exp(lp - logp_old[s:e, :c - 1])
                a = adv[s:e, :c - 1]
                pg = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2))
                loss = (pg * mask[s:e, :c - 1]).sum() / n_tok
                loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt_policy.step()
        sync()
        t["policy_update"] = time.perf_counter() - t0
        return t

    sums = {k: 0.0 for k in PHASES}
    step_s = 0.0
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        t = step()
        dt = time.perf_counter() - t0
        label = f"warm-up {i + 1}" if i < args.warmup else f"step {i - args.warmup + 1}"
        print(f"{label}: {dt:.3f} s "
              + " ".join(f"{k} {v:.3f}" for k, v in t.items()), file=sys.stderr)
        if i >= args.warmup:
            for k in PHASES:
                sums[k] += t[k]
            step_s += dt
    tokens = {"generate": N * R, "logprobs": 3 * NT, "prm_update": NT, "advantages": NT,
              "policy_update": NT}
    S = args.steps
    phases = {k: {"s": sums[k] / S, "tokens": tokens[k],
                  "tokens_per_s": tokens[k] * S / sums[k] if sums[k] > 0 else None}
              for k in PHASES}
    res = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "precision": dtype,
        "attention": "sdpa",
        "shape": "config.json" if args.model_config else args.shape,
        "model": {"vocab": V, "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers,
                  "heads": cfg.num_attention_heads, "kv_heads": cfg.num_key_value_heads,
                  "ff": cfg.intermediate_size, "tied": bool(cfg.tie_word_embeddings),
                  "params": n_params},
        "batch": {"prompts": P, "samples": K, "rows": N, "packed_len": T, "prompt_len": L0,
                  "response_len": R, "micro_batch_rows": mb, "row_tokens": NT,
                  "response_lengths": "given" if args.lens else "all --response-len",
                  "ppo_minibatches": args.ppo_minibatches},
        "warmup": args.warmup,
        "steps": S,
        "phases": phases,
        "step": {"s": step_s / S, "tokens": N * R, "tokens_per_s": N * R * S / step_s},
        "peak_memory_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None,
    }
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
