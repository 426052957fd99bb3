#!/usr/bin/env python3
"""Where the implicit PRM puts credit on the arithmetic task, from RL debug dumps.

For every response token of the dumped steps, the PRM's log-ratio q = log pi_prm - log pi_ref
is grouped by what the token is: the first character of a step result that should be
negative, written with its minus sign ("sign") or without it ("slip", the demo teacher's
habit); the first character of a non-negative step result; any other token. Prints a table
and, with --json, writes the counts and means. Standard library only.

usage: prm_credit.py DUMP_DIR_OR_FILES... [--skip-first N] [--json OUT]
"""
import argparse
import array
import glob
import json
import os
import re
import struct
import sys


def fail(msg):
    """One line naming the input and what was wrong; exit code 2 (bad input)."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


ALPHABET = "0123456789+-*=,:;QA "  # the character tokenizer's ids 3.. (0-2: pad, bos, eos)
STEP = re.compile(r"(-?\d+)([+-])(\d+)=$")
KINDS = [("sign", "negative result, minus sign written"),
         ("slip", "negative result, minus sign dropped"),
         ("positive", "first character of a non-negative result"),
         ("other", "every other response token")]


def load(path):
    """The dump's tensors as flat arrays plus shapes (F32 and I32 only)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in ("F32", "I32"):
            continue
        a = array.array("f" if t["dtype"] == "F32" else "i")
        begin, end = t["data_offsets"]
        a.frombytes(body[begin:end])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = (a, t["shape"])
    return out


def kind_of(text, k):
    """The kind of response character k given the response text before it."""
    if k == 0 or text[k - 1] != "=":
        return "other"
    m = STEP.search(text[:k])
    if not m:
        return "other"
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    if (a + b if op == "+" else a - b) >= 0:
        return "positive"
    return "sign" if text[k] == "-" else "slip"


def credit(paths):
    sums = {k: [0, 0.0] for k, _ in KINDS}
    for path in paths:
        t = load(path)
        need = ("tokens", "response_mask", "logp_prm", "logp_ref")
        missing = [x for x in need if x not in t]
        if missing:
            fail(f"{path}: not an RL debug dump (missing {', '.join(missing)})")
        tok, (N, T) = t["tokens"][0], t["tokens"][1]
        mask, prm, ref = t["response_mask"][0], t["logp_prm"][0], t["logp_ref"][0]
        for i in range(N):
            pos = [i * T + j for j in range(T) if mask[i * T + j] > 0]
            text = "".join(ALPHABET[tok[p] - 3] if 3 <= tok[p] < 3 + len(ALPHABET) else "#"
                           for p in pos)
            for k, p in enumerate(pos):
                s = sums[kind_of(text, k)]
                s[0] += 1
                s[1] += prm[p] - ref[p]
    return {k: {"tokens": n, "mean_log_ratio": (q / n if n else None)}
            for k, (n, q) in sums.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+", help="debug_dump_dir folders or step_*.safetensors")
    ap.add_argument("--skip-first", type=int, default=0,
                    help="leave out the first N steps (the PRM starts equal to the reference)")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args()
    paths = []
    for d in a.dumps:
        if os.path.isdir(d):
            paths += sorted(glob.glob(os.path.join(d, "step_*.safetensors")))
        elif os.path.isfile(d):
            paths.append(d)
        else:
            fail(f"{d}: no such dump folder or file")
    paths = paths[a.skip_first:]
    if not paths:
        fail("no step_*.safetensors to read")
    res = credit(paths)
    print(f"{len(paths)} dumped steps; PRM log-ratio log pi_prm - log pi_ref per response token")
    print(f"{'kind':<9} {'tokens':>7} {'mean':>9}  what")
    for k, what in KINDS:
        r = res[k]
        mean = "-" if r["mean_log_ratio"] is None else f"{r['mean_log_ratio']:+.3f}"
        print(f"{k:<9} {r['tokens']:>7} {mean:>9}  {what}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"steps": len(paths), "kinds": res}, f, indent=2)


if __name__ == "__main__":
    main()
