#!/usr/bin/env python3
"""Encode throughput: the tokenizers library against build/bench_tokenizer on the same text.

    python3 benchmarks/tokenizer_bench.py [--tokenizer tests/fixtures/bpe/qwen2/tokenizer.json]
        [--text FILE] [--mb 4] [--bin build/bench_tokenizer]

Without --text it writes a text of about --mb MB from this repository's own sources and docs
(code and English) plus the multilingual fixture texts, so nothing is downloaded. It checks
that both give the same ids, then prints MB/s for tokenizers' single encode() of the whole
text (one thread), its encode_batch() over the lines (all cores), and the C encoder (one
thread), and the ratios.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_text(mb):
    parts = []
    for pat in ("**/*.c", "**/*.h", "**/*.md", "**/*.py"):
        for p in sorted(glob.glob(os.path.join(ROOT, pat), recursive=True)):
            if "/build" in p:
                continue
            with open(p, encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
    with open(os.path.join(ROOT, "tests/fixtures/bpe/expected.json"), encoding="utf-8") as f:
        parts += [c["text"] for c in json.load(f)["tokenizers"][1]["cases"] if "\0" not in c["text"]]
    base = "\n".join(parts)
    reps = max(1, int(mb * 1e6 / len(base.encode())) + 1)
    return (base + "\n") * reps


def best_of(fn, n=3):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "tests/fixtures/bpe/qwen2/tokenizer.json"))
    ap.add_argument("--text")
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bench_tokenizer"))
    args = ap.parse_args()

    from tokenizers import Tokenizer

    tmp = tempfile.mkdtemp(prefix="tokbench_")
    text_path = args.text
    if not text_path:
        text_path = os.path.join(tmp, "text.txt")
        with open(text_path, "w", encoding="utf-8", newline="") as f:
            f.write(make_text(args.mb))
    with open(text_path, encoding="utf-8", newline="") as f:
        text = f.read()
    nbytes = len(text.encode())
    mb = nbytes / 1e6

    tok = Tokenizer.from_file(args.tokenizer)
    ref = tok.encode(text, add_special_tokens=False).ids
    t_single = best_of(lambda: tok.encode(text, add_special_tokens=False))
    lines = text.splitlines(keepends=True)
    t_batch = best_of(lambda: tok.encode_batch(lines, add_special_tokens=False))

    ids_path = os.path.join(tmp, "ids.bin")
    out = subprocess.run([args.bin, args.tokenizer, text_path, "5", ids_path],
                         capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        sys.exit("bench_tokenizer failed: " + out.stderr)
    with open(ids_path, "rb") as f:
        raw = f.read()
    ours = list(memoryview(raw).cast("i"))
    warm = [l for l in out.stdout.splitlines() if l.startswith("warm:")][0]
    c_mbs = float(warm.split()[1])

    print(f"text: {mb:.2f} MB, {len(ref)} tokens, {len(lines)} lines; tokenizer {args.tokenizer}")
    print(f"ids identical to tokenizers: {'yes' if ours == ref else 'NO'}")
    print(f"tokenizers encode (1 thread):          {mb / t_single:8.2f} MB/s")
    print(f"tokenizers encode_batch ({os.cpu_count()} cores):   {mb / t_batch:8.2f} MB/s")
    print(f"denserl tok_bpe_encode (1 thread):     {c_mbs:8.2f} MB/s")
    print(f"ratio denserl / tokenizers 1 thread: {c_mbs / (mb / t_single):.2f}x, "
          f"/ batch: {c_mbs / (mb / t_batch):.2f}x")
    sys.exit(0 if ours == ref else 1)


if __name__ == "__main__":
    main()
