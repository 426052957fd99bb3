"""Prints the compact table of benchmarks/gpu_check.sh from the files it left in OUTDIR
(bench.json from bench_cuda, peer.json from peer_attention.py, e2e_metrics.jsonl from the RL
step) and writes them together as OUTDIR/summary.json. Usage: gpu_table.py OUTDIR"""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(f"usage: gpu_table.py OUTDIR (the folder gpu_check.sh wrote; got "
                 f"{' '.join(sys.argv[1:]) or 'nothing'})")
    out = sys.argv[1]
    bench, peer = load(f"{out}/bench.json"), load(f"{out}/peer.json")
    summary = {"bench": bench, "peer": peer, "e2e": None}
    if bench:
        print(f"\n{bench['device']}: copy {bench['copy_GBps']:.0f} GB/s, "
              f"sgemm {bench['sgemm_TFLOPs']:.1f} TFLOP/s, bf16 gemm {bench['bf16_gemm_TFLOPs']:.0f} TFLOP/s")
        print(f"{'kernel':<28} {'shape':<34} {'ms':>8} {'rate':>9} {'of floor':>9}")
        for r in bench["rows"]:
            if r["name"].startswith("floor"):
                continue
            same = r.get("ratio_to_same_gemm")
            print(f"{r['name']:<28} {r['shape']:<34} {r['ms']:8.3f} {r['rate']:9.1f} "
                  f"{r['ratio_to_floor']:8.2f}x" + (f"  ({same:.2f}x same-product gemm)" if same else ""))
    if bench and peer:
        ours = {(r["name"], r["shape"]): r["ms"] for r in bench["rows"]}
        print("\nattention bf16 fwd+bwd vs PyTorch SDPA (same shapes, same run)")
        for p in peer["results"]:
            if "error" in p:
                print(f"  {p['backend']} Hkv={p['Hkv']}: {p['error']}")
                continue
            shape = f"B={p['B']} T={p['T']} H={p['H']}/{p['Hkv']} D={p['D']} causal"
            f, b = ours.get(("attention bf16 fwd", shape)), ours.get(("attention bf16 fwd+bwd", shape))
            if f is None or b is None:
                continue
            print(f"  vs {p['backend']:<6} Hkv={p['Hkv']:<3} fwd {p['fwd_ms']:.3f} ms / ours {f:.3f} ms "
                  f"= {p['fwd_ms'] / f:.2f}x   fwd+bwd {p['fwd_bwd_ms']:.3f} / {b:.3f} ms "
                  f"= {p['fwd_bwd_ms'] / b:.2f}x")
    summary["e2e"] = {}
    for prec in ("bf16", "bf16-auto", "bf16-cudnn", "bf16-plain", "bf16-nographs",
                 "bf16-dectiles", "bf16-rloo", "fp32"):
        path = f"{out}/e2e_{prec}_metrics.jsonl"
        if not os.path.exists(path):
            continue
        rows = [json.loads(l) for l in open(path) if l.strip()]
        rl = [r for r in rows if r.get("phase") == "rl"]
        if not rl:
            continue
        summary["e2e"][prec] = rl
        print(f"\nRL step, Qwen2.5-0.5B shape, {prec}: {rl[-1].get('groups_kept', '?')} groups, "
              f"mean response {rl[-1].get('response_len', float('nan')):.0f} tokens")
        for name, ph in rl[-1]["phases"].items():
            tps = ph.get("tokens_per_s")
            print(f"  {name:<14} {ph['s']:8.2f} s" + (f" {tps:12.0f} tok/s" if tps else ""))
    if "bf16" in summary["e2e"] and "bf16-rloo" in summary["e2e"]:
        prime, rloo = (sum(ph["s"] for ph in summary["e2e"][k][-1]["phases"].values())
                       for k in ("bf16", "bf16-rloo"))
        prm = summary["e2e"]["bf16"][-1]["phases"]["prm_update"]["s"]
        print(f"  PRIME's step {prime:.2f} s (PRM update {100 * prm / prime:.1f}%) against "
              f"outcome-only RLOO's {rloo:.2f} s: {100 * (prime / rloo - 1):+.0f}% (paper: +24%)")
    cmp_path = f"{out}/compare/compare.json"
    if os.path.exists(cmp_path):
        cmp = json.load(open(cmp_path))
        summary["compare"] = cmp["phases"]
        print("\ndenserl against the PyTorch stack (tokens/s, same step and batch)")
        for r in cmp["phases"]:
            a, b, q = r["denserl_tokens_per_s"], r["pytorch_tokens_per_s"], r["ratio"]
            print(f"  {r['phase']:<14} {a or 0:12.0f} {b or 0:12.0f}" +
                  (f"  {q:5.2f}x" if q else "      -"))
    varlen = {g: f"{out}/varlen_{g}.json" for g in ("true", "false")}
    if all(os.path.exists(p) for p in varlen.values()):
        summary["varlen"] = {}
        print("\nvaried response lengths (0.5B body, 256-token vocabulary), seconds per step")
        for g, p in varlen.items():
            r = json.load(open(p))
            ph = r["phases"]
            train = sum(ph[k]["s"] for k in ("logprobs", "prm_update", "policy_update"))
            summary["varlen"][g] = {"training_s": train, "step_s": r["step"]["s"],
                                    "row_tokens": r["batch"].get("row_tokens"),
                                    "packed": r["batch"]["rows"] * r["batch"]["packed_len"]}
            print(f"  group_by_length {g:<5}  training side {train:6.2f} s  step "
                  f"{r['step']['s']:6.2f} s  rows' tokens {r['batch'].get('row_tokens', 0):.0f} "
                  f"of {r['batch']['rows'] * r['batch']['packed_len']} packed")
    vc = f"{out}/varlen_compare/compare.json"
    if os.path.exists(vc):
        rows = {r["phase"]: r for r in json.load(open(vc))["phases"]}
        tr = rows.get("training", {})
        if tr.get("ratio"):
            print(f"  training side against PyTorch on the same lengths: {tr['ratio']:.2f}x "
                  f"({tr['denserl_tokens_per_s']:.0f} / {tr['pytorch_tokens_per_s']:.0f} tok/s)")
    for p in sorted(glob.glob(f"{out}/mfu_*.json")):
        r = json.load(open(p))
        ph, mem = r["phases"], r["memory"]
        name = os.path.basename(p)[4:-5]
        summary.setdefault("mfu", {})[name] = {k: ph[k]["mfu"] for k in ph}
        # the plan counts what the run allocates: the device's use above what it held before
        # the model (the CUDA context, the libraries' handles)
        used = mem["peak_bytes"] - mem.get("before_model_bytes", 0)
        print(f"\nMFU, {name}, {r['batch']['micro_batch_rows']}-row calls: " + ", ".join(
            f"{k} {100 * ph[k]['mfu']:.0f}%" for k in ("logprobs", "prm_update", "policy_update")
            if ph[k].get("mfu")) + f"; device use above the context {used / 2**30:.1f} GiB"
            + (f" (planned {plan['total'] / 2**30:.1f} GiB)"
               if (plan := mem.get("planned_bytes")) else ""))
    with open(f"{out}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
