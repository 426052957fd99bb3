#!/usr/bin/env bash
# `denserl inspect` on small debug dumps written here with the Python standard library (the
# format of PRIME.md §9): the plain listing must show every response token's reward,
# advantage and log-ratio at the right position, row selection must pick the right rows,
# colour mode must shade each token by its reward, and broken dumps or bad flags must end
# with "error: ..." and exit code 2. Usage: test_inspect.sh path/to/denserl
set -u
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
source "$(dirname "$0")/shtest.sh"
unset DENSERL_COLOR NO_COLOR

# mkdump OUT [OPTIONS_JSON]: writes OUT and OUT.json (what inspect should show). Options:
# tokenizer, values (bool), drop [names], shape {name: shape}, dtype {name: dtype}, seed.
cat >"$W/mkdump.py" <<'PY'
import json, random, struct, sys
out = sys.argv[1]
opt = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
rnd = random.Random(opt.get("seed", 1))
ALPHA = "0123456789+-*=,:;QA "
enc = lambda s: [3 + ALPHA.index(c) for c in s]
PAD, BOS, EOS = 0, 1, 2
# (prompt, response, group, outcome); row 3 is left-padded and has a space in its response
rows = [("1+2=", "3", 0, 1.0), ("1+2=", "4", 0, 0.0), ("3*3=", "10", 1, 0.0),
        ("3*3=", "9 1", 1, 0.5)]
N, T = len(rows), 11
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
tokens = [[PAD] * T for _ in range(N)]
mask = [[0.0] * T for _ in range(N)]
for i, (p, r, g, o) in enumerate(rows):
    seq = ([PAD] if i == 3 else []) + [BOS] + enc(p)
    start = len(seq)
    seq += enc(r) + [EOS]
    tokens[i][:len(seq)] = seq
    for t in range(start, len(seq)): mask[i][t] = 1.0
def field(masked):
    return [[f32(rnd.uniform(-2, 2)) if (mask[i][t] or not masked) else 0.0 for t in range(T)]
            for i in range(N)]
ten = {"tokens": ("I32", tokens), "response_mask": ("F32", mask),
       "group": ("I32", [r[2] for r in rows]), "outcome": ("F32", [r[3] for r in rows]),
       "logp_old": ("F32", field(False)), "logp_ref": ("F32", field(False)),
       "logp_prm": ("F32", field(False)), "token_reward": ("F32", field(True)),
       "advantages": ("F32", field(True)), "returns": ("F32", field(True))}
# one exact zero reward and one large one, so shading covers white and full colour
ten["token_reward"][1][1][6] = 0.0
ten["token_reward"][1][2][5] = 3.0
# stray values outside the mask must not count towards the sum or the colour scale
ten["token_reward"][1][0][1] = 9.0
if opt.get("values"): ten["values"] = ("F32", field(True))
exp = {"tokenizer": "none" if opt.get("no_meta") else opt.get("tokenizer", "char"), "rows": []}
name = lambda tok: ({EOS: "<eos>", BOS: "<bos>", PAD: "<pad>"}.get(tok)
                    or (ALPHA[tok - 3] if 3 <= tok < 3 + len(ALPHA) else "[%d]" % tok))
for i in range(N):
    chars = exp["tokenizer"] == "char"
    show = (lambda tok: name(tok)) if chars else (lambda tok: "[%d]" % tok)
    resp = [t for t in range(T) if mask[i][t]]
    prompt = "".join(show(tok) for tok in tokens[i][:resp[0]] if not (chars and tok == PAD))
    toks = [{"t": t, "text": show(tokens[i][t]), "reward": ten["token_reward"][1][i][t],
             "adv": ten["advantages"][1][i][t],
             "q": ten["logp_prm"][1][i][t] - ten["logp_ref"][1][i][t],
             "value": ten["values"][1][i][t] if "values" in ten else None} for t in resp]
    exp["rows"].append({"group": rows[i][2], "outcome": rows[i][3], "prompt": prompt,
                        "sum": sum(x["reward"] for x in toks), "tokens": toks})
for k in opt.get("drop", []): del ten[k]
for k, dt in opt.get("dtype", {}).items(): ten[k] = (dt, ten[k][1])
flat = lambda v: [y for x in v for y in (flat(x) if isinstance(x, list) else [x])]
def shape_of(v):
    return [len(v)] + shape_of(v[0]) if isinstance(v, list) else []
hdr, data = {}, b""
for k, (dt, v) in ten.items():
    shape = opt.get("shape", {}).get(k) or shape_of(v)
    vals = flat(v)
    n = 1
    for s in shape: n *= s
    vals = (vals + [0] * n)[:n]
    code = {"I32": "i", "F32": "f"}[dt]
    b = struct.pack("<%d%s" % (n, code), *[int(x) if code == "i" else x for x in vals])
    hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
    data += b
meta = {"tokenizer": exp["tokenizer"], "estimator": "rloo"}
if not opt.get("no_meta"): hdr["__metadata__"] = meta
h = json.dumps(hdr).encode()
h += b" " * ((1 - len(h)) % 4)  # header length 1 mod 4: every tensor's data is unaligned
open(out, "wb").write(struct.pack("<Q", len(h)) + h + data)
json.dump(exp, open(out + ".json", "w"))
PY

# check OUT EXPECTED_JSON ROWS MODE: compares inspect's output for the listed rows
# (comma-separated) with what the dump holds; MODE is plain or colour.
cat >"$W/check.py" <<'PY'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
exp = json.load(open(sys.argv[2]))
want = [int(x) for x in sys.argv[3].split(",")]
mode = sys.argv[4]
def close(a, b): return abs(a - b) <= 1e-5 * max(1.0, abs(b))
def die(msg): print("  " + msg); sys.exit(1)
if mode == "plain" and "\x1b" in text: die("escape codes in plain output")
if mode == "colour" and "\x1b[48;2;" not in text: die("no 24-bit background colours")
hdr = re.compile(r"^(?:\x1b\[1m)?row (\d+)  group (-?\d+)  outcome (\S+)  sum\(reward\) (\S+)"
                 r"  response tokens (\d+)(?:\x1b\[0m)?$")
lines = text.split("\n")
heads = [(k, hdr.match(l)) for k, l in enumerate(lines) if hdr.match(l)]
got = [int(m.group(1)) for _, m in heads]
if got != want: die("rows shown %s, expected %s" % (got, want))
scale = max(abs(t["reward"]) for i in want for t in exp["rows"][i]["tokens"])
for n, (k, m) in enumerate(heads):
    i = want[n]; e = exp["rows"][i]
    if int(m.group(2)) != e["group"] or not close(float(m.group(3)), e["outcome"]):
        die("row %d: header %r" % (i, lines[k]))
    if not close(float(m.group(4)), e["sum"]) or int(m.group(5)) != len(e["tokens"]):
        die("row %d: sum/count in %r, expected %g and %d" % (i, lines[k], e["sum"], len(e["tokens"])))
    end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
    body = lines[k + 1:end]
    if mode == "plain":
        if body[0] != "  prompt  " + e["prompt"]: die("row %d: prompt line %r" % (i, body[0]))
        toks = [l.split() for l in body[2:] if l.strip()]
        ncol = 4 if e["tokens"][0]["value"] is None else 5
        if len(toks) != len(e["tokens"]): die("row %d: %d token lines" % (i, len(toks)))
        for p, x in zip(toks, e["tokens"]):
            tok = " ".join(p[1:-ncol + 1])
            tok = " " if tok == "' '" else tok
            nums = [float(v) for v in p[-ncol + 1:]]
            ref = [x["reward"], x["adv"], x["q"]] + ([x["value"]] if ncol == 5 else [])
            if int(p[0]) != x["t"] or tok != x["text"] or not all(map(close, nums, ref)):
                die("row %d: line %r, expected t=%d %r %s" % (i, " ".join(p), x["t"], x["text"], ref))
    else:
        line = body[0]
        dim = "".join(re.findall(r"\x1b\[2m(.*?)\x1b\[0m", line))
        if dim != e["prompt"]: die("row %d: dim prompt %r, expected %r" % (i, dim, e["prompt"]))
        cells = re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;20;20;20m(.*?)\x1b\[0m", line)
        if [c[3] for c in cells] != [x["text"] for x in e["tokens"]]:
            die("row %d: shaded tokens %r" % (i, [c[3] for c in cells]))
        for c, x in zip(cells, e["tokens"]):
            a = min(abs(x["reward"]) / scale, 1.0)
            to = (46, 160, 67) if x["reward"] >= 0 else (214, 39, 40)
            rgb = [round(255 + a * (t - 255)) for t in to]
            if any(abs(int(c[j]) - rgb[j]) > 1 for j in range(3)):
                die("row %d t=%d: colour %s for reward %g, expected %s" % (i, x["t"], c[:3], x["reward"], rgb))
PY

D=$W/dump.safetensors
python3 "$W/mkdump.py" "$D" || { echo "FAIL could not write the dump"; exit 1; }

# show NAME ROWS MODE -- command...: runs the command and checks its output
show() {
    local name=$1 rows=$2 mode=$3 exp=${4}; shift 5
    "$@" >"$W/out" 2>"$W/err"
    local rc=$?
    if [ $rc -eq 0 ] && python3 "$W/check.py" "$W/out" "$exp" "$rows" "$mode"; then
        ok "$name"
    else
        bad "$name (rc=$rc): $(head -c 300 "$W/err")"
    fi
}
show "plain, all rows" 0,1,2,3 plain "$D.json" -- "$BIN" inspect "$D" --plain
show "--row 2" 2 plain "$D.json" -- "$BIN" inspect "$D" --plain --row 2
show "--row 0" 0 plain "$D.json" -- "$BIN" inspect --row 0 "$D" --plain
show "--rows 2" 0,1 plain "$D.json" -- "$BIN" inspect "$D" --rows 2 --plain
show "--rows past the end" 0,1,2,3 plain "$D.json" -- "$BIN" inspect "$D" --rows 99 --plain
show "a pipe gets plain output" 0,1,2,3 plain "$D.json" -- "$BIN" inspect "$D"
show "DENSERL_COLOR=1 shades by reward" 0,1,2,3 colour "$D.json" -- env DENSERL_COLOR=1 "$BIN" inspect "$D"
# the scale is the largest |reward| of the rows shown: row 2 holds the 3.0, so rows 0-1 rescale
show "colour scale from the rows shown" 0,1 colour "$D.json" -- env DENSERL_COLOR=1 "$BIN" inspect "$D" --rows 2
show "--plain beats DENSERL_COLOR" 1 plain "$D.json" -- env DENSERL_COLOR=1 "$BIN" inspect "$D" --plain --row 1
show "DENSERL_COLOR=0 turns colour off" 3 plain "$D.json" -- env DENSERL_COLOR=0 "$BIN" inspect "$D" --row 3

if command -v script >/dev/null && script -qc true /dev/null >/dev/null 2>&1; then
    script -qc "'$BIN' inspect '$D' --row 3" /dev/null >"$W/tty" 2>&1
    if grep -q $'\x1b\\[48;2;' "$W/tty"; then ok "a terminal gets colour"; else bad "a terminal gets colour: $(head -c 300 "$W/tty")"; fi
    NO_COLOR=1 script -qc "'$BIN' inspect '$D' --row 3" /dev/null >"$W/tty" 2>&1
    if ! grep -q $'\x1b' "$W/tty" && grep -q "row 3" "$W/tty"; then ok "NO_COLOR on a terminal"; else bad "NO_COLOR on a terminal"; fi
else
    echo "SKIP terminal checks (no script(1))"
fi

python3 "$W/mkdump.py" "$W/v.safetensors" '{"values": true, "seed": 7}'
show "values column" 0,1,2,3 plain "$W/v.safetensors.json" -- "$BIN" inspect "$W/v.safetensors" --plain
python3 "$W/mkdump.py" "$W/hf.safetensors" '{"tokenizer": "hf", "seed": 3}'
show "other tokenizers print [id]" 0,1,2,3 plain "$W/hf.safetensors.json" -- "$BIN" inspect "$W/hf.safetensors" --plain
python3 "$W/mkdump.py" "$W/nometa.safetensors" '{"no_meta": true, "seed": 5}'
show "no metadata prints [id]" 0,1,2,3 plain "$W/nometa.safetensors.json" -- "$BIN" inspect "$W/nometa.safetensors" --plain
show "other tokenizers in colour" 3 colour "$W/hf.safetensors.json" -- env DENSERL_COLOR=1 "$BIN" inspect "$W/hf.safetensors" --row 3

# expect_error NAME PATTERN -- command...: exit code 2, stderr "error: " and PATTERN, no output
expect_error() {
    local name=$1 pat=$2; shift 3
    "$@" >"$W/out" 2>"$W/err"
    local rc=$?
    if [ $rc -eq 2 ] && grep -q "^error: " "$W/err" && grep -qF -- "$pat" "$W/err" && [ ! -s "$W/out" ]; then
        ok "$name: $(head -c 200 "$W/err")"
    else
        bad "$name (rc=$rc): $(head -c 300 "$W/err")"
    fi
}
mk() { python3 "$W/mkdump.py" "$W/b.safetensors" "$1"; }
B=$W/b.safetensors
expect_error "missing file" "$W/nope.safetensors: cannot open" -- "$BIN" inspect "$W/nope.safetensors"
printf 'definitely not safetensors' >"$W/junk"
expect_error "not safetensors" "$W/junk:" -- "$BIN" inspect "$W/junk"
mk '{"drop": ["tokens"]}'
expect_error "not a dump" "$B: not a debug dump" -- "$BIN" inspect "$B"
mk '{"drop": ["logp_ref"]}'
expect_error "missing tensor" "$B: missing tensor 'logp_ref'" -- "$BIN" inspect "$B"
mk '{"drop": ["returns"]}'
expect_error "missing returns" "$B: missing tensor 'returns'" -- "$BIN" inspect "$B"
mk '{"shape": {"advantages": [4, 12]}}'
expect_error "(N,T) shapes disagree" "$B: tensor 'advantages' has shape (4,12), expected (4,11)" -- "$BIN" inspect "$B"
mk '{"shape": {"group": [3]}}'
expect_error "group shape" "$B: tensor 'group' has shape (3), expected (4)" -- "$BIN" inspect "$B"
mk '{"shape": {"tokens": [44]}}'
expect_error "tokens not 2-D" "$B: tensor 'tokens' has shape (44), expected (N,T)" -- "$BIN" inspect "$B"
mk '{"dtype": {"tokens": "F32"}}'
expect_error "tokens not I32" "$B: tensor 'tokens' is F32, expected I32" -- "$BIN" inspect "$B"
mk '{"dtype": {"token_reward": "I32"}}'
expect_error "reward not F32" "$B: tensor 'token_reward' is I32, expected F32" -- "$BIN" inspect "$B"
mk '{"shape": {"values": [4, 10]}, "values": true}'
expect_error "bad optional values" "$B: tensor 'values' has shape (4,10)" -- "$BIN" inspect "$B"
expect_error "row out of range" "$D: --row 4 is out of range (the dump has 4 rows, 0..3)" -- "$BIN" inspect "$D" --row 4
expect_error "negative row" "--row expects" -- "$BIN" inspect "$D" --row -1
expect_error "row not a number" "--row expects" -- "$BIN" inspect "$D" --row 2x
expect_error "--rows 0" "--rows expects" -- "$BIN" inspect "$D" --rows 0
expect_error "--row without a value" "--row expects" -- "$BIN" inspect "$D" --row
expect_error "--row with --rows" "cannot be combined" -- "$BIN" inspect "$D" --row 1 --rows 2
expect_error "two files" "unexpected argument" -- "$BIN" inspect "$D" "$D"
expect_error "unknown flag" "unexpected argument '--colour'" -- "$BIN" inspect "$D" --colour
expect_error "no file" "expected a dump file" -- "$BIN" inspect

finish
