"""Whether two run directories hold the same run: the metrics lines, timings aside, and the
policy and PRM checkpoints byte for byte. Prints "ok" or what differs; exit 0 or 1.

    python3 tests/same_run.py RUN_A RUN_B
"""
import json
import sys

TIMINGS = ("phases", "tokens_per_s", "elapsed_s")


def lines(run):
    out = []
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        for k in TIMINGS:
            j.pop(k, None)
        out.append(j)
    return out


def main(a, b):
    la, lb = lines(a), lines(b)
    errs = [] if la == lb else [f"metrics differ ({len(la)} and {len(lb)} lines)"]
    for m in ("policy", "prm"):
        with open(f"{a}/{m}/model.safetensors", "rb") as fa, \
                open(f"{b}/{m}/model.safetensors", "rb") as fb:
            if fa.read() != fb.read():
                errs.append(f"{m} weights differ")
    print("; ".join(errs) if errs else "ok")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
