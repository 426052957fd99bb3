#!/usr/bin/env python3
"""Checks a run's TensorBoard event file against its metrics.jsonl, with nothing but the
standard library: every record's framing and masked CRC-32C, the version record first, then
one event per metrics line that has a step, in order, holding every number of the line (tagged
phase/key, objects inside as phase/key/inner) as a float32, and nothing else. With the
tensorboard package importable (--tensorboard), also reads the directory with TensorBoard's own
EventAccumulator and compares its scalars. Prints "ok" or what differs; exits 0 or 1.
Usage: tfevents_check.py RUN_DIR [--tensorboard]"""
import glob
import json
import os
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(blob):
    pos = 0
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise ValueError("a record header cut short at byte %d" % pos)
        head = blob[pos:pos + 8]
        (n,) = struct.unpack("<Q", head)
        (crc_n,) = struct.unpack("<I", blob[pos + 8:pos + 12])
        if crc_n != masked(head):
            raise ValueError("length CRC wrong at byte %d" % pos)
        data = blob[pos + 12:pos + 12 + n]
        if len(data) != n or pos + 16 + n > len(blob):
            raise ValueError("a record cut short at byte %d" % pos)
        (crc_d,) = struct.unpack("<I", blob[pos + 12 + n:pos + 16 + n])
        if crc_d != masked(data):
            raise ValueError("data CRC wrong at byte %d" % pos)
        yield data
        pos += 16 + n


def varint(b, i):
    v = s = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << s
        s += 7
        if not x & 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a protocol buffer message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wire)
        yield num, wire, v


def event(data):
    e = {"values": {}}
    for num, wire, v in fields(data):
        if num == 1 and wire == 1:
            e["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2 and wire == 0:
            e["step"] = v
        elif num == 3 and wire == 2:
            e["file_version"] = v.decode()
        elif num == 5 and wire == 2:
            for sn, sw, sv in fields(v):
                assert sn == 1 and sw == 2, "Summary field %d" % sn
                tag = val = None
                for vn, vw, vv in fields(sv):
                    if vn == 1 and vw == 2:
                        tag = vv.decode()
                    elif vn == 2 and vw == 5:
                        val = vv
                e["values"][tag] = val
        else:
            raise ValueError("Event field %d (wire %d)" % (num, wire))
    return e


def flatten(prefix, obj, out):
    for k, v in obj.items():
        if k in ("phase", "step"):
            continue
        tag = prefix + "/" + k
        if isinstance(v, bool) or v is None or isinstance(v, (str, list)):
            continue
        if isinstance(v, dict):
            flatten(tag, v, out)
        else:
            out[tag] = struct.pack("<f", float(v))


def expected(run_dir):
    want = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if not isinstance(j.get("step"), int) or isinstance(j.get("step"), bool):
                continue
            vals = {}
            flatten(j.get("phase", "metrics"), j, vals)
            if vals:
                want.append((j["step"], vals))
    return want


def check(run_dir):
    files = glob.glob(os.path.join(run_dir, "tensorboard", "*"))
    if len(files) != 1 or "tfevents" not in os.path.basename(files[0]):
        return "expected one event file in tensorboard/, found %s" % files
    with open(files[0], "rb") as f:
        evs = [event(r) for r in records(f.read())]
    if not evs or evs[0].get("file_version") != "brain.Event:2":
        return "the first record is not the version record"
    want = expected(run_dir)
    got = [(e.get("step"), e["values"]) for e in evs[1:]]
    if len(got) != len(want):
        return "%d events for %d metrics lines" % (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            missing = sorted(set(w[1]) ^ set(g[1]))
            return "event %d (step %s) differs from its metrics line (step %s); tags %s" % (
                i, g[0], w[0], missing or "the same, values differ")
    if any(not isinstance(e.get("wall_time"), float) or e["wall_time"] < 1e9 for e in evs[1:]):
        return "an event without a Unix wall time"
    return None


def check_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    want = {}
    for step, vals in expected(run_dir):
        for tag, v in vals.items():
            want.setdefault(tag, []).append((step, struct.unpack("<f", v)[0]))
    got = {t: [(s.step, s.value) for s in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
    return None if got == want else "TensorBoard reads other scalars than metrics.jsonl holds"


def main():
    if crc32c(b"123456789") != 0xE3069283:
        print("the checker's own CRC-32C is wrong")
        return 1
    try:
        err = check(sys.argv[1])
    except (ValueError, IndexError, AssertionError, UnicodeDecodeError) as e:
        err = "a bad event file: %s" % e
    if err is None and "--tensorboard" in sys.argv[2:]:
        err = check_tensorboard(sys.argv[1])
    print(err or "ok")
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main())
