#!/usr/bin/env python3
"""Per-kernel time table from an Nsight Compute CSV log (ncu --csv --metrics
gpu__time_duration.sum ... --log-file LOG): kernels grouped by name (arguments and template
parameters dropped), with launches, total and mean time and the share of the profiled time.

Usage: benchmarks/ncu_summary.py LOG [--top N] [--json OUT]"""
import argparse
import csv
import json
import re
import sys

UNITS = {"ns": 1e-6, "nsecond": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0,
         "second": 1e3, "s": 1e3}


def short_name(name):
    name = re.sub(r"\(.*$", "", name)  # argument list
    depth, out = 0, []
    for ch in name:  # template arguments
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    name = "".join(out).strip()
    name = re.sub(r"^(void|static)\s+", "", name)
    return name[:70]


def read_rows(path):
    with open(path, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("==")]
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"{path}: no CSV header (\"ID\", ...) found")
    rows = list(csv.DictReader(lines[start:]))
    out = []
    if rows and "Metric Name" in rows[0]:  # the details page: one row per metric
        for r in rows:
            if r["Metric Name"] != "gpu__time_duration.sum":
                continue
            v = float(r["Metric Value"].replace(",", ""))
            out.append((r["Kernel Name"], v * UNITS.get(r["Metric Unit"], 1e-6)))
    else:  # the raw page: one row per kernel, the first data row holds the units
        units = rows[0] if rows else {}
        for r in rows[1:]:
            v = float(r["gpu__time_duration.sum"].replace(",", ""))
            out.append((r["Kernel Name"], v * UNITS.get(units.get("gpu__time_duration.sum"), 1e-6)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = read_rows(a.log)
    if not rows:
        sys.exit(f"{a.log}: no kernel timings")
    agg = {}
    for name, ms in rows:
        k = short_name(name)
        n, t = agg.get(k, (0, 0.0))
        agg[k] = (n + 1, t + ms)
    total = sum(t for _, t in agg.values())
    table = sorted(agg.items(), key=lambda kv: -kv[1][1])
    print(f"{len(rows)} kernels profiled, {total:.2f} ms of kernel time")
    print(f"{'kernel':<70} {'launches':>8} {'total ms':>9} {'mean us':>8} {'share':>6}")
    for k, (n, t) in table[: a.top]:
        print(f"{k:<70} {n:>8} {t:>9.3f} {1e3 * t / n:>8.1f} {100 * t / total:>5.1f}%")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"kernels": len(rows), "total_ms": total,
                       "by_name": [{"name": k, "launches": n, "total_ms": t}
                                   for k, (n, t) in table]}, f, indent=1)


if __name__ == "__main__":
    main()
