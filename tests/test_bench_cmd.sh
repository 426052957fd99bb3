#!/usr/bin/env bash
# `denserl bench` on the CPU: a tiny model from a config.json given by --model-config and the
# built-in "tiny" shape each run 1 warm-up + 1 timed PRIME step, print the phase table and
# write a JSON report with every phase, positive times and a positive matrix rate; bad
# flags and bad inputs exit 2 with "error: ...".
# Usage: test_bench_cmd.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

cat >"$W/run.json" <<'JSON'
{"run_dir": "unused", "seed": 5, "device": "cpu", "threads": 1,
 "model": {"init": "random", "model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1,
   "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
   "max_position_embeddings": 64},
 "task": {"name": "arith", "max_operands": 3, "max_value": 9, "eval_size": 4},
 "rl": {"prompts_per_step": 3, "samples_per_prompt": 2, "max_response_tokens": 12,
   "micro_batch_rows": 2, "ppo_minibatches": 2, "prm_minibatches": 1}}
JSON
mkdir -p "$W/model"
cat >"$W/model/config.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 48, "hidden_size": 24, "intermediate_size": 40,
 "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1,
 "max_position_embeddings": 128, "rope_theta": 10000.0, "tie_word_embeddings": true}
JSON

# check_json FILE: every phase present with a positive time, positive rate and memory
check_json() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errs = []
for ph in ("generate", "logprobs", "prm_update", "advantages", "policy_update"):
    e = r["phases"].get(ph)
    if e is None or not e["s"] > 0 or not e["tokens_per_s"] > 0:
        errs.append(f"{ph}: {e}")
for ph in ("generate", "logprobs", "prm_update", "policy_update"):
    e = r["phases"][ph]
    if not (e["tflop"] > 0 and e["tflops"] > 0 and e["mfu"] > 0):
        errs.append(f"{ph} flops: {e}")
if not r["step"]["s"] > 0: errs.append("step time")
if not r["matrix_rate_tflops"] > 0: errs.append("matrix rate")
if not r["memory"]["peak_bytes"] > 0: errs.append("memory")
if not r["time_to_first_step_s"] > 0: errs.append("time to first step")
if r["steps"] != 1 or r["warmup"] != 1: errs.append("step counts")
if r["batch"]["rows"] != 6: errs.append("rows %d" % r["batch"]["rows"])
print("; ".join(errs) if errs else "ok")
PY
}

out=$("$BIN" bench "$W/run.json" --model-config "$W/model/config.json" --warmup 1 --steps 1 \
    --json "$W/a.json" 2>&1)
st=$?
[ $st -eq 0 ] && ok "model-config run exits 0" || bad "model-config run exit $st: $out"
for ph in generate logprobs prm_update advantages policy_update "step (total)" MFU; do
    expect "table shows $ph" "$ph" "$out"
done
expect "one warm-up step" "warm-up 1/1" "$out"
expect "one timed step" "step 1/1" "$out"
if [ -f "$W/a.json" ]; then
    res=$(check_json "$W/a.json" 2>&1)
    expect "model-config JSON valid" "ok" "$res"
    expect "shape from --model-config" '"vocab": 48' "$(cat "$W/a.json")"
else
    bad "model-config JSON written"
fi

# the work counted: the rows' own tokens, 2 log-prob forwards when the PRM update's forwards
# give the PRM log-probs (one PRM mini-batch), 3 with two mini-batches or a frozen PRM, 1 with
# none
count_check() { # JSON forwards prm_flops_zero
    python3 - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); fw = int(sys.argv[2]); zero = sys.argv[3] == "1"
b, ph = r["batch"], r["phases"]
errs = []
if b["logprob_forwards"] != fw: errs.append(f"forwards {b['logprob_forwards']} != {fw}")
if not 0 < b["row_tokens"] <= b["rows"] * b["packed_len"]: errs.append(f"row tokens {b}")
if abs(ph["logprobs"]["tokens"] - fw * b["row_tokens"]) > 1e-6 * b["row_tokens"]:
    errs.append(f"logprobs tokens {ph['logprobs']['tokens']}")
if zero != (ph["prm_update"]["tflop"] == 0): errs.append(f"prm flops {ph['prm_update']['tflop']}")
print("; ".join(errs) if errs else "ok")
PY
}
[ -f "$W/a.json" ] && expect "one PRM mini-batch: 2 log-prob forwards" "ok" "$(count_check "$W/a.json" 2 0)"
for v in "rl.prm_minibatches=2 3 0" "rl.prm_update=none 3 1"; do
    # shellcheck disable=SC2086
    set -- $v
    "$BIN" bench "$W/run.json" --shape tiny --warmup 0 --steps 1 --set "$1" --json "$W/c.json" \
        >/dev/null 2>&1 && expect "$1: $2 log-prob forwards" "ok" "$(count_check "$W/c.json" "$2" "$3")" ||
        bad "$1 run"
done

# the outcome-only baseline with no PRM: the policy's forward alone, no PRM work
"$BIN" bench "$W/run.json" --shape tiny --warmup 0 --steps 1 --set rl.estimator=rloo_outcome \
    --set rl.prm_update=off --json "$W/d.json" >/dev/null 2>&1 &&
    expect "rl.prm_update=off: 1 log-prob forward" "ok" "$(count_check "$W/d.json" 1 1)" ||
    bad "rl.prm_update=off run"

cp "$W/model/config.json" "$W/other.json"
err=$("$BIN" bench "$W/run.json" --model-config "$W/other.json" 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "a .json not named config.json exits 2" || bad "other.json exit code"
out=$("$BIN" bench "$W/run.json" --shape tiny --warmup 1 --steps 1 --set rl.max_response_tokens=8 \
    --json "$W/b.json" 2>&1)
st=$?
[ $st -eq 0 ] && ok "tiny shape run exits 0" || bad "tiny shape run exit $st: $out"
[ -f "$W/b.json" ] && expect "tiny JSON valid" "ok" "$(check_json "$W/b.json" 2>&1)" ||
    bad "tiny JSON written"

# two ranks under mpirun (with ZeRO-1): one table and one JSON, from rank 0, for the whole
# batch, with MFU against both ranks' rate
if command -v mpirun >/dev/null; then
    MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none
         -np 2)
    [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
    out=$(TMPDIR=$W "${MPI[@]}" "$BIN" bench "$W/run.json" --shape tiny --warmup 0 --steps 1 \
        --set zero_stage=1 --json "$W/r2.json" 2>&1)
    st=$?
    [ $st -eq 0 ] && ok "2 ranks: exits 0" || bad "2 ranks: exit $st: $out"
    expect_eq "2 ranks: one table" 1 "$(grep -c '^step (total)' <<<"$out")"
    res=$(python3 - "$W/r2.json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
e = r["phases"]["policy_update"]
mfu = e["tflops"] / (2 * r["matrix_rate_tflops"])
ok = r["ranks"] == 2 and r["zero_stage"] == 1 and r["batch"]["rows"] == 6
ok = ok and abs(e["mfu"] - mfu) <= 1e-6 * mfu
print("ok" if ok else f"ranks {r['ranks']} rows {r['batch']['rows']} mfu {e['mfu']} vs {mfu}")
PY
)
    expect_eq "2 ranks: JSON of the whole batch, MFU against 2 x the rate" ok "$res"
else
    echo "SKIP 2 ranks: mpirun not found"
fi

# bad flags and inputs: exit 2 with an error line, nothing written
for args in "--steps 0" "--steps x" "--warmup -1" "--shape gpt9" "--bogus" "--json" \
    "--shape tiny --model-config $W/model" "--model-config $W/missing"; do
    # shellcheck disable=SC2086
    err=$("$BIN" bench "$W/run.json" $args --json "$W/bad.json" 2>&1 >/dev/null)
    st=$?
    [ $st -eq 2 ] && ok "'$args' exits 2" || bad "'$args' exit $st"
    expect "'$args' prints error" "error:" "$err"
done
err=$("$BIN" bench 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "no config exits 2" || bad "no config exit code"
err=$("$BIN" bench "$W/missing.json" 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "missing config exits 2" || bad "missing config exit code"
err=$("$BIN" bench "$W/run.json" --shape tiny --set precision=bf16 2>&1 >/dev/null)
[ $? -eq 2 ] && ok "bf16 on the CPU exits 2" || bad "bf16 on CPU exit code"
[ -e "$W/bad.json" ] && bad "a failed run wrote JSON" || ok "failed runs write nothing"

finish
