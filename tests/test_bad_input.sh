#!/usr/bin/env bash
# Bad input, each case must end with one line "error: <file>: ..." on stderr, exit code 2, no
# crash and no output file. Usage: test_bad_input.sh path/to/denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0

# expect NAME PATTERN OUTFILE -- command...: exit code 2, stderr "error: " + PATTERN, OUTFILE absent
expect() {
    local name=$1 pat=$2 out=$3; shift 4
    "$@" >"$W/stdout" 2>"$W/stderr"
    local rc=$? err
    err=$(cat "$W/stderr")
    if [ $rc -eq 2 ] && [ "$(wc -l <"$W/stderr")" -eq 1 ] && grep -q "^error: " "$W/stderr" &&
       grep -qF -- "$pat" "$W/stderr" &&
       { [ -z "$out" ] || [ ! -e "$out" ]; } && ! ls "$W"/*.tmp.* >/dev/null 2>&1; then
        pass=$((pass + 1)); echo "PASS $name: $err"
    else
        fail=$((fail + 1)); echo "FAIL $name (rc=$rc): $err"
    fi
}

# a small valid model directory and input to break
cat >"$W/tiny.json" <<JSON
{"run_dir": "$W/run", "model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
 "num_key_value_heads": 1, "intermediate_size": 24, "max_position_embeddings": 64},
 "task": {"max_operands": 2, "max_value": 9, "eval_size": 4}, "sft": {"steps": 0},
 "rl": {"max_response_tokens": 20}}
JSON
"$BIN" train "$W/tiny.json" >/dev/null 2>&1 || { echo "FAIL could not make a tiny model"; exit 1; }
M=$W/run/sft
echo '{"tokens": [1, 5, 7, 2]}' >"$W/ok.jsonl"
"$BIN" logprobs --model "$M" --data "$W/ok.jsonl" --out "$W/ok.out" || { echo "FAIL valid input"; exit 1; }

mk() { rm -rf "$W/m"; cp -r "$M" "$W/m"; }
lp() { "$BIN" logprobs --model "$W/m" --data "$W/ok.jsonl" --out "$W/out.jsonl"; }
edit_config() { python3 - "$W/m/config.json" "$1" <<'PY'
import json, sys
p, code = sys.argv[1], sys.argv[2]
c = json.load(open(p)); exec(code); json.dump(c, open(p, "w"))
PY
}
# rewrite model.safetensors: header edited by python code on h (dict), or raw bytes by `raw`
edit_st() { python3 - "$W/m/model.safetensors" "$1" <<'PY'
import json, struct, sys
p, code = sys.argv[1], sys.argv[2]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]; raw = None
exec(code)
if raw is None:
    hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
    raw = struct.pack("<Q", len(hb)) + hb + data
open(p, "wb").write(raw)
PY
}

expect "missing model directory" "$W/nope" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/nope" --data "$W/ok.jsonl" --out "$W/out.jsonl"
mk; echo '{"model_type": ' >"$W/m/config.json"
expect "config.json not JSON" "config.json: not valid JSON" "$W/out.jsonl" -- lp
mk; edit_config 'del c["hidden_size"]'
expect "config.json lacks a field" "missing field 'hidden_size'" "$W/out.jsonl" -- lp
mk; edit_config 'c["num_hidden_layers"] = "1"'
expect "config.json wrong type" "'num_hidden_layers' must be an integer" "$W/out.jsonl" -- lp
mk; edit_config 'c["model_type"] = "gpt2"'
expect "unsupported model_type" "model_type 'gpt2' is not supported" "$W/out.jsonl" -- lp
mk; edit_config 'c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}'
expect "unsupported rope scaling" "type 'yarn' is not supported" "$W/out.jsonl" -- lp
mk; edit_config 'c["model_type"] = "mistral"; c["sliding_window"] = 2'
expect "sliding window shorter than the sequence" "sliding window" "$W/out.jsonl" -- lp
mk; edit_st 'raw = struct.pack("<Q", 1 << 40) + b[8:]'
expect "safetensors header length past the file" "model.safetensors: header length" "$W/out.jsonl" -- lp
mk; edit_st 'raw = b[:8] + b"{not json" + b[17:]'
expect "safetensors header not JSON" "model.safetensors" "$W/out.jsonl" -- lp
mk; edit_st 'k = next(x for x in h if x != "__metadata__"); h[k]["data_offsets"][1] += 10**6'
expect "safetensors offsets out of range" "model.safetensors" "$W/out.jsonl" -- lp
mk; edit_st 'ks = [x for x in h if x != "__metadata__"]; h[ks[1]]["data_offsets"] = h[ks[0]]["data_offsets"]; h[ks[1]]["shape"] = h[ks[0]]["shape"]'
expect "safetensors offsets overlap" "overlap" "$W/out.jsonl" -- lp
mk; edit_st 'k = next(x for x in h if x != "__metadata__"); h[k]["dtype"] = "Q7"'
expect "safetensors unknown dtype" "Q7" "$W/out.jsonl" -- lp
mk; edit_st 'h["model.norm.weight"]["shape"] = [4, 4]'
expect "safetensors shape disagrees with config" "model.norm.weight" "$W/out.jsonl" -- lp
mk; edit_st 'del h["model.norm.weight"]'
expect "safetensors lacks a tensor" "tensor 'model.norm.weight' is missing" "$W/out.jsonl" -- lp
mk; edit_st 'o = h["model.norm.weight"]["data_offsets"]; d = bytearray(data); d[o[0] + 8:o[0] + 12] = struct.pack("<f", float("nan")); data = bytes(d)'
expect "safetensors NaN weight" "tensor 'model.norm.weight' holds a non-finite value (nan) at element 2" "$W/out.jsonl" -- lp
mk
echo 'not json' >"$W/bad.jsonl"
expect "JSONL line not JSON" "bad.jsonl:1: not valid JSON" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/m" --data "$W/bad.jsonl" --out "$W/out.jsonl"
printf '{"tokens": [1, 2]}\n{"tokens": [1, "x"]}\n' >"$W/bad.jsonl"
expect "JSONL non-integer token" "bad.jsonl:2: token 1 is not an integer" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/m" --data "$W/bad.jsonl" --out "$W/out.jsonl"
echo '{"tokens": [1, 99999]}' >"$W/bad.jsonl"
expect "JSONL token >= vocab" "outside the vocabulary" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/m" --data "$W/bad.jsonl" --out "$W/out.jsonl"
echo '{"tokens": [1]}' >"$W/bad.jsonl"
expect "JSONL fewer than 2 tokens" "at least 2 tokens" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/m" --data "$W/bad.jsonl" --out "$W/out.jsonl"
expect "run config unknown key" "unknown key 'sft.setps' (did you mean 'sft.steps'?)" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set sft.setps=3
expect "run config key in the wrong section" "unknown key 'warmup_steps' (did you mean 'rl.warmup_steps'?)" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set warmup_steps=3
expect "run config unknown key, nothing near" "unknown key 'rl.prm_learning_rate'" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.prm_learning_rate=3
expect "run config out-of-range value" "'sft.lr' must be in" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set sft.lr=-1
expect "run config wrong type" "'seed' must be an integer" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set seed=\"x\"
expect "cuDNN attention without bf16" "'attention' \"cudnn\" needs 'precision' \"bf16\"" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set attention=cudnn
expect "unknown attention" "'attention' must be one of flash|cudnn" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set attention=sdpa
expect "negative gradient bucket" "'grad_bucket_mb' must be in" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set grad_bucket_mb=-1
echo '[1, 2' >"$W/broken.json"
expect "run config not JSON" "broken.json: not valid JSON" "$W/run2" -- "$BIN" train "$W/broken.json"
expect "run config missing" "nope.json: file not found" "" -- "$BIN" train "$W/nope.json"
expect "K < 2 with a leave-one-out estimator" "'rl.samples_per_prompt' must be >= 2" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.samples_per_prompt=1
expect "acc_lo > acc_hi" "'rl.acc_lo' (0.9) must not exceed" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.acc_lo=0.9 --set rl.acc_hi=0.5
expect "beta <= 0" "'rl.beta' must be > 0" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.beta=0
expect "gae without a critic" "needs a critic" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.estimator=gae --set rl.critic=none
expect "prm_update off with process rewards in use" "'rl.prm_update' \"off\" runs no PRM" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.prm_update=off
expect "prompt longer than the context" "exceeds the model's context" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.max_response_tokens=60
expect "unknown estimator" "'rl.estimator' must be one of" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.estimator=ppo
expect "unknown transform" "'rl.reward_transform' must be one of" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.reward_transform=tanh
expect "wrapped message kept whole" '--device: device "tpu": expected "cpu", "cuda" or "auto"' "" -- "$BIN" generate --model "$W/m" --template raw --prompt hi --device tpu
expect "dataset is a directory" "$W: is a directory, expected a JSONL file" "$W/out.jsonl" -- "$BIN" logprobs --model "$W/m" --data "$W" --out "$W/out.jsonl"
expect "verify data is a directory" "$W: is a directory, expected a JSONL file" "" -- "$BIN" verify --task gsm8k --data "$W"
expect "run config is a directory" "$W: is a directory, expected a JSON file" "" -- "$BIN" train "$W"
: >"$W/empty.jsonl"
expect "verify data empty" "empty.jsonl: no cases" "" -- "$BIN" verify --task gsm8k --data "$W/empty.jsonl"
expect "bench unknown flag, usage on the same line" "bench: unexpected argument '--frob' (usage:" "" -- "$BIN" bench "$W/tiny.json" --frob
expect "train --set without a value" "train: --set expects key.path=value" "" -- "$BIN" train "$W/tiny.json" --set
expect "logprobs flag without a value" "logprobs: --out expects a value" "" -- "$BIN" logprobs --model "$W/m" --data "$W/ok.jsonl" --out
expect "logprobs --out is a directory" "$W: is a directory, expected a file name to write" "" -- "$BIN" logprobs --model "$W/m" --data "$W/ok.jsonl" --out "$W"
expect "bench --json in a missing directory, before the run" "$W/nodir/b.json: cannot create" "" -- "$BIN" bench "$W/tiny.json" --json "$W/nodir/b.json"
: >"$W/afile"
expect "run_dir under a file" "'run_dir': $W/afile/run: cannot create directory" "$W/afile/run" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/afile/run"
expect "debug_dump_dir under a file, before any work" "'debug_dump_dir': $W/afile/d: cannot create" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.steps=1 --set debug_dump_dir="$W/afile/d"
expect "vocab_size below the task's tokens" "'model.vocab_size' (5) is smaller than the task's" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set model.vocab_size=5
expect "rows x tokens past an int" "rl.max_response_tokens' tokens make" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set rl.prompts_per_step=1048576 --set rl.samples_per_prompt=1024
expect "a model no memory holds" "more than this machine's" "$W/run2" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/run2" --set model.hidden_size=65536 --set model.intermediate_size=1048576 --set model.num_hidden_layers=1024
expect "bench: a model no memory holds" "more than this machine's" "" -- "$BIN" bench "$W/tiny.json" --set model.hidden_size=65536 --set model.intermediate_size=1048576 --set model.num_hidden_layers=1024
# a resume point whose state is broken: refused before any work, in one line
"$BIN" train "$W/tiny.json" --set run_dir="$W/rr" --set rl.steps=1 --set rl.save_every=1 \
    --set rl.prompts_per_step=2 >/dev/null 2>&1 || echo "FAIL could not make a resume point"
python3 - "$W/rr/resume.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h["__metadata__"]["state"] = "{"
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
expect "resume state not JSON" "resume.safetensors: no resume state" "" -- "$BIN" train "$W/tiny.json" --set run_dir="$W/rr" --set rl.steps=2 --set rl.save_every=1 --set rl.prompts_per_step=2 --resume
expect "unknown flag" "unexpected argument" "" -- "$BIN" logprobs --model "$W/m" --bogus x

# plot specs: a misspelt key is named, not dropped; a series must be an object
echo '{"titel": "x", "series": [{"y": [1, 2]}]}' >"$W/p1.json"
expect "plot: unknown top-level key" "p1.json: unknown key 'titel'" "$W/p.svg" -- "$BIN" plot "$W/p1.json" "$W/p.svg"
echo '{"series": [{"y": [1, 2], "lable": "a"}]}' >"$W/p2.json"
expect "plot: unknown series key" "p2.json: series 0: unknown key 'lable'" "$W/p.svg" -- "$BIN" plot "$W/p2.json" "$W/p.svg"
echo '{"series": [5]}' >"$W/p3.json"
expect "plot: series not an object" "p3.json: series 0 must be an object" "$W/p.svg" -- "$BIN" plot "$W/p3.json" "$W/p.svg"

# --help is not a mistake: usage on stdout, exit 0, for every command
for c in train logprobs inspect plot verify generate eval bench score; do
    if "$BIN" $c --help >"$W/stdout" 2>"$W/stderr" && grep -q "usage: denserl $c" "$W/stdout" &&
       [ ! -s "$W/stderr" ]; then
        pass=$((pass + 1)); echo "PASS $c --help"
    else
        fail=$((fail + 1)); echo "FAIL $c --help: $(cat "$W/stderr")"
    fi
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
