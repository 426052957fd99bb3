"""Relative L2 difference ||a - b|| / ||a|| between two F32 safetensors checkpoints with the
same tensors, printed as one number; used by the shell tests that compare runs.
Usage: python3 st_reldiff.py A.safetensors B.safetensors"""
import json
import struct
import sys


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    out = {}
    for k, v in json.loads(b[8:8 + n]).items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = struct.unpack(f"<{(e - s) // 4}f", b[8 + n + s:8 + n + e])
    return out


def reldiff(pa, pb):
    a, b = tensors(pa), tensors(pb)
    num = sum((p - q) ** 2 for k in a for p, q in zip(a[k], b[k]))
    return (num / sum(p * p for k in a for p in a[k])) ** 0.5


if __name__ == "__main__":
    print(f"{reldiff(sys.argv[1], sys.argv[2]):.6e}")
