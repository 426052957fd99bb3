"""PRIME (rloo with implicit process rewards) against outcome-only RLOO, same budgets.

For each seed: one SFT run, then two RL runs from that checkpoint that differ only in
rl.estimator (rloo vs rloo_outcome); the outcome-only run has no PRM (rl.prm_update off),
which leaves its policy steps as they are and its step as cheap as a plain RLOO step.
Collects the held-out greedy accuracy curves and the time per RL step, writes
OUT/prime_vs_rloo.md, OUT/prime_vs_rloo.json and OUT/prime_vs_rloo.svg (mean and min-max
band over seeds). Standard library only.

Usage: python3 benchmarks/prime_vs_rloo.py [--bin build/denserl] [--config configs/demo.json]
       [--seeds 1 2 3] [--out benchmarks/results] [--set key=value ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ESTIMATORS = [("rloo", "PRIME (rloo + implicit PRM)"), ("rloo_outcome", "RLOO, outcome only")]
OWN_SETS = {"rloo_outcome": ["rl.prm_update=off"]}  # after the user's overrides


def run(cmd, log):
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {r.returncode}); see {log}")


def eval_curve(run_dir):
    """(step, held-out accuracy) points: after SFT at step 0, the periodic evals, the final."""
    rep = json.load(open(os.path.join(run_dir, "report.json")))
    return [(p["step"], p["accuracy"]) for p in rep["eval_curve"]]


def train_curve(run_dir):
    pts = []
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line)
        if r.get("phase") == "rl":
            pts.append((r["step"], r["accuracy"]))
    return pts


def step_seconds(run_dir):
    """Mean over the RL steps of the phases' seconds in all, and of the PRM update's."""
    tot, prm, n = 0.0, 0.0, 0
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line)
        if r.get("phase") == "rl" and "phases" in r:
            tot += sum(v["s"] for v in r["phases"].values())
            prm += r["phases"]["prm_update"]["s"]
            n += 1
    return tot / max(n, 1), prm / max(n, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/denserl")
    ap.add_argument("--config", default="configs/demo.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild the report from the runs already in OUT/runs")
    a = ap.parse_args()
    runs = os.path.join(a.out, "runs")
    os.makedirs(runs, exist_ok=True)
    extra = [x for s in a.set for x in ("--set", s)]
    curves = {e: [] for e, _ in ESTIMATORS}
    train = {e: [] for e, _ in ESTIMATORS}
    times = {e: [] for e, _ in ESTIMATORS}
    for seed in a.seeds:
        sft = os.path.join(runs, f"sft_seed{seed}")
        if not a.report_only:
            print(f"seed {seed}: SFT", flush=True)
            # after the user's overrides, so that their rl.steps cannot add RL to this run
            run([a.bin, "train", a.config] + extra + ["--set", f"seed={seed}", "--set",
                 "rl.steps=0", "--set", f"run_dir={sft}"], sft + ".log")
        for est, _ in ESTIMATORS:
            rd = os.path.join(runs, f"{est}_seed{seed}")
            if not a.report_only:
                print(f"seed {seed}: RL with {est}", flush=True)
                own = [x for s in OWN_SETS.get(est, []) for x in ("--set", s)]
                run([a.bin, "train", a.config] + extra + own +
                    ["--set", f"seed={seed}", "--set", "sft.steps=0", "--set",
                     f"model.init={sft}/sft", "--set", f"rl.estimator={est}", "--set",
                     f"run_dir={rd}"], rd + ".log")
            curves[est].append(eval_curve(rd))
            train[est].append(train_curve(rd))
            times[est].append(step_seconds(rd))

    wall = sum(json.load(open(os.path.join(runs, f"{e}_seed{sd}", "report.json")))["wall_seconds"]
               for e, _ in ESTIMATORS for sd in a.seeds)
    summary = {"seeds": a.seeds, "config": a.config, "overrides": a.set,
               "rl_wall_seconds": wall, "estimators": {}}
    for est, _ in ESTIMATORS:
        steps = [int(s) for s, _ in curves[est][0]]
        per_step = [[c[i][1] for c in curves[est]] for i in range(len(steps))]
        summary["estimators"][est] = {
            "steps": steps,
            "mean": [statistics.mean(v) for v in per_step],
            "min": [min(v) for v in per_step],
            "max": [max(v) for v in per_step],
            "final": [c[-1][1] for c in curves[est]],
            "start": [c[0][1] for c in curves[est]],
            "step_seconds": [t for t, _ in times[est]],
            "prm_update_seconds": [t for _, t in times[est]],
        }
    p, r = summary["estimators"]["rloo"], summary["estimators"]["rloo_outcome"]
    target = statistics.mean(r["final"])
    reach = next((s for s, m in zip(p["steps"], p["mean"]) if s > 0 and m >= target), None)
    summary["rloo_final_mean"] = target
    summary["prime_steps_to_rloo_final"] = reach
    summary["total_steps"] = p["steps"][-1]
    tp, tr = statistics.mean(p["step_seconds"]), statistics.mean(r["step_seconds"])
    tprm = statistics.mean(p["prm_update_seconds"])
    summary["prime_step_cost_over_rloo"] = tp / tr - 1 if tr > 0 else None
    with open(os.path.join(a.out, "prime_vs_rloo.json"), "w") as f:
        json.dump(summary, f, indent=2)

    def pm(v):
        return f"{100 * statistics.mean(v):.1f}% ± {100 * (statistics.stdev(v) if len(v) > 1 else 0):.1f}"

    lines = ["# PRIME vs outcome-only RLOO", "",
             f"Config `{a.config}` with {' '.join(a.set) or 'no overrides'}; seeds "
             f"{', '.join(map(str, a.seeds))}; same SFT checkpoint per seed for both; "
             f"{summary['total_steps']} RL steps each; greedy accuracy on the held-out set.", "",
             "| estimator | after SFT | after RL (mean ± std over seeds) | per seed |",
             "| --- | --- | --- | --- |"]
    for est, label in ESTIMATORS:
        e = summary["estimators"][est]
        seeds = ", ".join(f"{100 * x:.1f}%" for x in e["final"])
        lines.append(f"| {label} | {pm(e['start'])} | {pm(e['final'])} | {seeds} |")
    lines += ["", "Held-out accuracy at each evaluation (mean over seeds):", "",
              "| step | " + " | ".join(l for _, l in ESTIMATORS) + " |",
              "| --- | --- | --- |"]
    for i, s in enumerate(p["steps"]):
        lines.append(f"| {s} | {100 * p['mean'][i]:.1f}% | {100 * r['mean'][i]:.1f}% |")
    lines.append("")
    if reach is not None:
        lines.append(f"PRIME's mean first reached outcome-only RLOO's final mean "
                     f"({100 * target:.1f}%) at step {reach} of {summary['total_steps']} "
                     f"({100 * reach / summary['total_steps']:.0f}% of the steps; the paper "
                     f"reports 40%).")
    else:
        lines.append(f"PRIME's mean did not reach outcome-only RLOO's final mean "
                     f"({100 * target:.1f}%) within {summary['total_steps']} steps.")
    diff = 100 * (statistics.mean(p["final"]) - target)
    lines.append(f"At the end PRIME is {abs(diff):.1f} points {'above' if diff >= 0 else 'below'} "
                 f"outcome-only RLOO (the paper reports 6.9 points above, at 7B scale).")
    lines += ["", f"Time per RL step (its phases, mean over steps and seeds): PRIME {tp:.3f} s, "
              f"of which the PRM update {tprm:.3f} s ({100 * tprm / tp:.0f}%); outcome-only RLOO, "
              f"with no PRM and no reference forward, {tr:.3f} s. PRIME's step costs "
              f"{100 * (tp / tr - 1):.0f}% more (the paper: 24%)."]
    lines += ["", f"RL wall time {summary['rl_wall_seconds'] / 60:.1f} min in all (runs shared "
              f"the machine with other work). Chart: prime_vs_rloo.svg.", ""]
    with open(os.path.join(a.out, "prime_vs_rloo.md"), "w") as f:
        f.write("\n".join(lines))
    spec = {"title": "Held-out accuracy during RL (mean, min-max band over seeds)",
            "xlabel": "RL step", "ylabel": "greedy accuracy", "ymin": 0, "ymax": 1,
            "series": [{"label": label, "x": summary["estimators"][e]["steps"],
                        "y": summary["estimators"][e]["mean"],
                        "lo": summary["estimators"][e]["min"],
                        "hi": summary["estimators"][e]["max"]} for e, label in ESTIMATORS]}
    spec_path = os.path.join(a.out, "prime_vs_rloo.plot.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    subprocess.run([a.bin, "plot", spec_path, os.path.join(a.out, "prime_vs_rloo.svg")], check=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
