#!/usr/bin/env bash
# The demo config in its quick form: SFT, RL with a debug dump, evaluation, and every
# output the run directory promises. Usage: test_demo_quick.sh path/to/denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS $1"; else fail=$((fail + 1)); echo "FAIL $1"; fi; }
"$BIN" train configs/demo.json --set sft.steps=20 --set rl.steps=2 --set debug_dump_dir="$W/dump" \
    --set run_dir="$W/run" --set task.eval_size=32 >"$W/out" 2>&1
check "quick demo run exits 0" $?
R=$W/run
for f in metrics.jsonl report.json report.md curves.svg run_config.json sft/config.json \
         sft/model.safetensors policy/config.json policy/model.safetensors prm/config.json \
         prm/model.safetensors; do
    [ -s "$R/$f" ]; check "run directory has $f" $?
done
ls "$W"/dump/step_000001.safetensors "$W"/dump/step_000002.safetensors >/dev/null 2>&1
check "one dump per RL step" $?
python3 benchmarks/prm_credit.py "$W/dump" --json "$W/credit.json" >"$W/credit.out" 2>&1
check "prm_credit.py reads the dumps" $?
python3 - "$W" <<'PY'
import json, sys
sys.path.insert(0, "benchmarks")
import prm_credit
w = sys.argv[1]
res = json.load(open(f"{w}/credit.json"))
mask = sum(sum(1 for v in prm_credit.load(f"{w}/dump/step_00000{s}.safetensors")["response_mask"][0]
               if v > 0) for s in (1, 2))
assert res["steps"] == 2 and sum(k["tokens"] for k in res["kinds"].values()) == mask, res
k = prm_credit.kind_of
assert k("3-8=5", 4) == "slip" and k("3-8=-5", 4) == "sign" and k("3+8=11", 4) == "positive"
assert k("1-1=0,0-4=-4", 10) == "sign" and k("1-1=0,0-4=4", 10) == "slip"
assert k("3-8=-5", 5) == "other" and k("3-8=5", 0) == "other"
PY
check "prm_credit.py sorts every response token into one kind" $?
python3 benchmarks/prm_credit.py "$W/no-such-dir" >/dev/null 2>&1
[ $? = 2 ]; check "prm_credit.py: a missing dump is exit code 2" $?
# report.json names the build: the commit this checkout is at (when it is a git checkout),
# the same as --version says
head=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
python3 - "$R/report.json" "$head" "$("$BIN" --version)" <<'PY'
import json, re, sys
b = json.load(open(sys.argv[1]))["denserl"]
assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?|unknown", b["commit"]), b
assert b["commit"].split("-")[0] == sys.argv[2], (b, sys.argv[2])
assert f"commit {b['commit']}" in sys.argv[3] and b["version"] in sys.argv[3], (b, sys.argv[3])
assert b["backends"] in ("cpu", "cpu+cuda", "cpu+cuda-emu"), b
PY
check "report.json and --version name the build's commit" $?
python3 - "$R" <<'PY'
import json, sys
r = sys.argv[1]
rep = json.load(open(f"{r}/report.json"))
for k in ("sft_eval_accuracy", "rl_eval_accuracy"):
    assert 0 <= rep[k] <= 1, (k, rep[k])
assert rep["rl_steps"] == 2 and rep["sft_steps"] == 20
rows = [json.loads(l) for l in open(f"{r}/metrics.jsonl")]
rl = [x for x in rows if x["phase"] == "rl"]
assert len(rl) == 2
need = ["prompts_drawn", "groups_kept", "accuracy", "response_len", "truncation_rate",
        "prm_loss", "prm_acc", "prm_auc", "reward_mean", "reward_min", "reward_max", "adv_mean",
        "adv_std", "policy_loss", "clip_frac", "kl_old", "kl_ref", "entropy", "grad_norm",
        "prm_grad_norm", "lr", "prm_lr", "skipped_updates", "phases", "gen_decode_steps",
        "gen_slot_use"]
for x in rl:
    missing = [k for k in need if k not in x]
    assert not missing, missing
    assert x["gen_decode_steps"] > 0 and 0 < x["gen_slot_use"] <= 1, x
    for ph in ("generate", "verify", "logprobs", "prm_update", "advantages", "policy_update"):
        assert "s" in x["phases"][ph], ph
import xml.etree.ElementTree as E
E.parse(f"{r}/curves.svg")
PY
check "report.json fractions, metrics.jsonl has every PRIME.md section 8 field, curves.svg parses" $?
grep -q "held-out accuracy after RL" "$W/out"; check "summary table printed" $?
"$BIN" inspect "$W/dump/step_000001.safetensors" --rows 1 --plain >"$W/insp" 2>&1 &&
    grep -q "^row 0" "$W/insp" && grep -q "prompt" "$W/insp"
check "inspect reads the dump" $?
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
