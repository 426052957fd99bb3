"""Compares a log-prob JSONL written by `denserl logprobs` with a fixture's
expected.jsonl: same number of lines, same number of values on each line, and
the largest absolute difference within a tolerance.

    python3 tests/compare_logprobs.py OUT.jsonl EXPECTED.jsonl [--tol 1e-4]

Each line of both files is an object with a "logprobs" list of numbers. Prints
one line with the largest error and where it is; exits 0 on a match, 1 on any
mismatch or unreadable file, 2 on bad usage. Standard library only, so ctest
needs nothing beyond python3.

The default 1e-4 is about 20x the gap between HF's own float32 forward and the
float64 reference on these fixtures (make_fixtures.py prints it: ~5e-6), while
a missed norm weight, bias, eps or RoPE setting moves some value by 1e-3 or more.
"""

import json
import math
import sys


def read(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})")
            lp = obj.get("logprobs") if isinstance(obj, dict) else None
            if not isinstance(lp, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in lp
            ):
                raise ValueError(f"{path}:{n}: expected an object with a \"logprobs\" list of numbers")
            rows.append([float(x) for x in lp])
    return rows


def main(argv):
    tol = 1e-4
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--tol" and i + 1 < len(argv):
            tol = float(argv[i + 1])
            i += 2
        elif argv[i].startswith("--tol="):
            tol = float(argv[i].split("=", 1)[1])
            i += 1
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 2:
        print("usage: compare_logprobs.py OUT.jsonl EXPECTED.jsonl [--tol 1e-4]", file=sys.stderr)
        return 2
    out_path, exp_path = args

    try:
        got, want = read(out_path), read(exp_path)
    except (OSError, ValueError) as e:
        print(f"FAIL {out_path}: {e}")
        return 1
    if len(got) != len(want):
        print(f"FAIL {out_path}: {len(got)} lines, expected {len(want)}")
        return 1

    worst, where = 0.0, None
    for n, (g, w) in enumerate(zip(got, want), 1):
        if len(g) != len(w):
            print(f"FAIL {out_path}:{n}: {len(g)} values, expected {len(w)}")
            return 1
        for k, (a, b) in enumerate(zip(g, w)):
            # a NaN or inf must fail, and NaN would slip past a plain `>`
            err = abs(a - b) if math.isfinite(a) else math.inf
            if where is None or err > worst:
                worst, where = err, (n, k, a, b)

    ok = worst <= tol
    detail = f" (line {where[0]} value {where[1]}: got {where[2]!r}, expected {where[3]!r})" if where else ""
    print(f"{'ok' if ok else 'FAIL'} {out_path}: max abs error {worst:.3e}, tol {tol:.1e}{detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
