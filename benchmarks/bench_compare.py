"""denserl against a PyTorch stack on the same PRIME step: runs `denserl bench` and
benchmarks/peer_torch.py on the same shape and batch, prints tokens/s of each phase for both
and the ratio denserl / PyTorch, and writes an SVG bar chart of the ratios.

    python3 benchmarks/bench_compare.py --denserl build/denserl --config configs/bench_qwen05b.json
        [--shape qwen2.5-0.5b | --model-config DIR] [--warmup 1] [--steps 3] [--set k=v ...]
        [--out-dir benchmarks/results/compare] [--denserl-json F] [--peer-json F]

The peer takes its batch from denserl's report: the same prompts x samples rows, the same
micro-batch rows and PPO mini-batches, responses of rl.max_response_tokens and a prompt
length making the same packed row length; "precision" bf16 runs the peer under bf16
autocast on the GPU, fp32 runs it in fp32 (on the CPU with denserl's thread count).
--denserl-json / --peer-json reuse an earlier result instead of running that side.
--varlen gives the peer denserl's response lengths (and mean prompt length): its training
phases then run each micro-batch padded to its longest row, as a data collator does, while
denserl groups rows by length; the training-side row is the one to read (generation still
samples every peer row to the full length).
Writes OUT_DIR/denserl.json, peer.json, compare.json and compare.svg.
"""

import argparse
import json
import os
import subprocess
import sys
from xml.sax.saxutils import escape

PHASES = ("generate", "logprobs", "prm_update", "advantages", "policy_update")
HERE = os.path.dirname(os.path.abspath(__file__))


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--denserl", default="build/denserl", help="the denserl binary")
    p.add_argument("--config", default="configs/bench_qwen05b.json")
    p.add_argument("--shape", default="qwen2.5-0.5b")
    p.add_argument("--model-config", help="HF model directory or config.json (for both sides)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", action="append", default=[], help="passed to denserl bench")
    p.add_argument("--out-dir", default="benchmarks/results/compare")
    p.add_argument("--denserl-json", help="reuse this denserl bench report")
    p.add_argument("--peer-json", help="reuse this peer_torch.py report")
    p.add_argument("--python", default=sys.executable, help="interpreter for the peer")
    p.add_argument("--peer-micro-batch", type=int,
                   help="the peer's micro-batch rows (default: denserl's); for comparing each "
                        "side at its own best setting, e.g. denserl with rl.micro_batch_rows "
                        "\"auto\" against a peer whose full logits fit only small micro-batches")
    p.add_argument("--varlen", action="store_true",
                   help="give the peer denserl's response lengths: its training phases then "
                        "pad each micro-batch to its longest row (compare the training side)")
    return p.parse_args()


def run(cmd, required=True):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0 and required:
        sys.exit(f"error: command failed with exit code {r.returncode}: {' '.join(cmd)}")
    return r.returncode == 0


def run_denserl(args, out):
    cmd = [args.denserl, "bench", args.config, "--warmup", str(args.warmup), "--steps",
           str(args.steps), "--json", out]
    cmd += ["--model-config", args.model_config] if args.model_config else ["--shape", args.shape]
    for s in args.set:
        cmd += ["--set", s]
    run(cmd)


def run_peer(args, ours, out):
    b = ours["batch"]
    cuda = ours["backend"] == "cuda"
    R = b["max_response_tokens"]
    cmd = [args.python, os.path.join(HERE, "peer_torch.py"),
           "--prompts", str(b["prompts"]), "--samples", str(b["samples"]),
           "--response-len", str(R), "--prompt-len", str(max(1, b["packed_len"] - R)),
           "--micro-batch", str(args.peer_micro_batch or b["micro_batch_rows"]),
           "--ppo-minibatches", str(b["ppo_minibatches"]),
           "--device", "cuda" if cuda else "cpu",
           "--dtype", "bf16" if ours["precision"] == "bf16" else "fp32",
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--json", out]
    if not cuda:
        cmd += ["--threads", str(ours["threads"])]
    if args.varlen:  # denserl's response lengths, and its mean prompt length
        lens = b["response_lengths"]
        path = os.path.join(os.path.dirname(out), "response_lengths.json")
        with open(path, "w") as f:
            json.dump(lens, f)
        L0 = max(1, round((b["row_tokens"] - sum(lens)) / len(lens)))
        cmd[cmd.index("--prompt-len") + 1] = str(L0)
        cmd += ["--response-lens", path]
    if args.model_config:
        mc = args.model_config
        cmd += ["--model-config", mc if mc.endswith(".json") else os.path.join(mc, "config.json")]
    else:
        cmd += ["--shape", args.shape]
    return run(cmd, required=False)


def ratio_svg(path, title, rows):
    """Horizontal bars of denserl / PyTorch per row, a rule at 1x, value labels."""
    w, left, right, bar, gap, top = 720, 150, 90, 26, 12, 56
    h = top + len(rows) * (bar + gap) + 40
    vmax = max([r for _, r in rows if r] + [1.0]) * 1.1
    x = lambda v: left + (w - left - right) * v / vmax  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
           f'<text x="{w / 2}" y="44" text-anchor="middle" fill="#555">tokens/s of denserl '
           f'divided by PyTorch (right of the line: denserl faster)</text>']
    for i, (name, r) in enumerate(rows):
        y = top + i * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end">'
                   f'{escape(name)}</text>')
        if r:
            color = "#2b7bba" if r >= 1 else "#d95f02"
            out.append(f'<rect x="{left}" y="{y}" width="{x(r) - left:.1f}" height="{bar}" '
                       f'fill="{color}"/>')
            out.append(f'<text x="{x(r) + 6:.1f}" y="{y + bar * 0.7}">{r:.2f}x</text>')
        else:
            out.append(f'<text x="{left + 6}" y="{y + bar * 0.7}" fill="#888">n/a</text>')
    y1 = top + len(rows) * (bar + gap)
    out.append(f'<line x1="{x(1):.1f}" y1="{top - 4}" x2="{x(1):.1f}" y2="{y1}" stroke="black" '
               f'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x(1):.1f}" y="{y1 + 16}" text-anchor="middle">1x</text>')
    out.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)


def rate(report, ph):
    """tokens/s of a phase, of the whole step, or of the training side: the batch's tokens
    (the rows' own tokens where the report gives them, else rows x packed length) over the
    summed time of the three training phases."""
    if ph == "step":
        return report["step"].get("tokens_per_s")
    if ph != "training":
        return report["phases"][ph].get("tokens_per_s")
    b = report["batch"]
    tokens = b.get("row_tokens") or b["rows"] * b["packed_len"]
    s = sum(report["phases"][k]["s"] or 0 for k in ("logprobs", "prm_update", "policy_update"))
    return tokens / s if s > 0 else None


def main():
    args = parse()
    os.makedirs(args.out_dir, exist_ok=True)
    ours_path = args.denserl_json or os.path.join(args.out_dir, "denserl.json")
    peer_path = args.peer_json or os.path.join(args.out_dir, "peer.json")
    if not args.denserl_json:
        run_denserl(args, ours_path)
    with open(ours_path) as f:
        ours = json.load(f)
    peer = None
    if args.peer_json or run_peer(args, ours, peer_path):
        with open(peer_path) as f:
            peer = json.load(f)
    else:
        print("peer_torch.py failed: denserl's numbers only", file=sys.stderr)

    rows, table = [], []
    print(f"\n{'phase':<14} {'denserl tok/s':>14} {'pytorch tok/s':>14} {'denserl/pytorch':>16}")
    for ph in PHASES + ("training", "step"):
        a = rate(ours, ph)
        b = rate(peer, ph) if peer else None
        r = a / b if a and b else None
        if ph == "step" and args.varlen:
            r = None  # the peer samples every row to the full length: other tokens, other work
        name = {"step": "whole step", "training": "training side"}.get(ph, ph)
        rows.append((name, r))
        table.append({"phase": ph, "denserl_tokens_per_s": a, "pytorch_tokens_per_s": b,
                      "ratio": r})
        fmt = lambda v: f"{v:14.1f}" if v else f"{'-':>14}"  # noqa: E731
        print(f"{name:<14} {fmt(a)} {fmt(b)} {(f'{r:15.2f}x' if r else '-'):>16}")
    ob = ours["batch"]
    print(f"\ndenserl: {ours['device']} {ours['precision']}, {ob['rows']} rows x {ob['packed_len']}"
          f" packed, {ob['micro_batch_rows']}-row calls", end="")
    if peer:
        pb = peer["batch"]
        print(f" | pytorch {peer['torch']} / transformers {peer['transformers']}: "
              f"{peer['device']} {peer['precision']}, {pb['rows']} rows x {pb['packed_len']}, "
              f"{pb['micro_batch_rows']}-row micro-batches", end="")
    print()
    print("training side: the batch's tokens per second of log-probs + PRM update + policy "
          "update together (the same work on both sides, however each splits it into phases)")
    rt = ob.get("row_tokens")
    if not args.varlen and rt and rt < 0.95 * ob["rows"] * ob["packed_len"]:
        print(f"note: denserl's rows hold {rt:.0f} of {ob['rows'] * ob['packed_len']} packed tokens "
              "(responses ended early) while the peer runs every row at full length: the ratios "
              "compare different work; --varlen gives the peer the same lengths")
    if args.varlen:
        print("whole step: no ratio with --varlen (the peer samples every row to the full length)")
    else:
        print("whole step: generated tokens per second of the whole step (same tokens on both "
              "sides)")
    res = {"denserl": ours, "pytorch": peer, "phases": table}
    with open(os.path.join(args.out_dir, "compare.json"), "w") as f:
        json.dump(res, f, indent=2)
    title = (f"PRIME step, {ours['shape']} ({ours['model']['params'] / 1e6:.3g} M params), "
             f"{ob['rows']} rows x {ob['packed_len']}, {ours['precision']}, {ours['device']}")
    svg = os.path.join(args.out_dir, "compare.svg")
    ratio_svg(svg, title, rows)
    print(f"wrote {os.path.join(args.out_dir, 'compare.json')} and {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
