"""Whether two run directories hold the same run: the metrics lines, timings aside, and the
policy and PRM checkpoints byte for byte (no PRM in either: rl.prm_update off). Prints "ok" or what differs; exit 0 or 1.

    python3 tests/same_run.py RUN_A RUN_B
"""
import json
import os
import sys

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


def main(a, b):
    la, lb = lines(a), lines(b)
    errs = [] if la == lb else [f"metrics differ ({len(la)} and {len(lb)} lines)"]
    for m in ("policy", "prm"):
        pa, pb = f"{a}/{m}/model.safetensors", f"{b}/{m}/model.safetensors"
        if m == "prm" and not os.path.exists(pa) and not os.path.exists(pb):
            continue  # rl.prm_update "off": neither run has a PRM
        with open(pa, "rb") as fa, open(pb, "rb") as fb:
            if fa.read() != fb.read():
                errs.append(f"{m} weights differ")
    print("; ".join(errs) if errs else "ok")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
