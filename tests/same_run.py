"""Whether two run directories hold the same run: the metrics lines, timings aside, and the
policy and PRM checkpoints byte for byte (no PRM in either: rl.prm_update off); with --within
TOL, only whether the checkpoints lie within a relative L2 difference of TOL (st_reldiff).
Prints "ok" or what differs; exit 0 or 1.

    python3 tests/same_run.py [--within TOL] RUN_A RUN_B
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_reldiff import reldiff  # noqa: E402

# wall-clock timings, how generation was scheduled (rl.generation_rows) and how much the
# ranks sent each other (zero_stage 2 sums each call), which change no result
TIMINGS = ("phases", "tokens_per_s", "elapsed_s", "gen_decode_steps", "gen_slot_use",
           "comm_bytes_per_rank")


def lines(run):
    out = []
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        for k in TIMINGS:
            j.pop(k, None)
        out.append(j)
    return out


def main(a, b, within=None):
    la, lb = lines(a), lines(b)
    errs = [] if la == lb or within is not None else [
        f"metrics differ ({len(la)} and {len(lb)} lines)"]
    for m in ("policy", "prm"):
        pa, pb = f"{a}/{m}/model.safetensors", f"{b}/{m}/model.safetensors"
        if m == "prm" and not os.path.exists(pa) and not os.path.exists(pb):
            continue  # rl.prm_update "off": neither run has a PRM
        if within is not None:
            rel = reldiff(pa, pb)
            if not rel <= within:
                errs.append(f"{m} weights {rel:.2e} apart (> {within:g})")
            continue
        with open(pa, "rb") as fa, open(pb, "rb") as fb:
            if fa.read() != fb.read():
                errs.append(f"{m} weights differ")
    print("; ".join(errs) if errs else "ok")
    return 1 if errs else 0


if __name__ == "__main__":
    if sys.argv[1] == "--within":  # the checkpoints within a relative L2 difference alone
        sys.exit(main(sys.argv[3], sys.argv[4], float(sys.argv[2])))
    sys.exit(main(sys.argv[1], sys.argv[2]))
