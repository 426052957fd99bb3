#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with AddressSanitizer and UBSan) of the code that reads
# what users and models hand denserl: the math verifier (every reply a policy writes), the
# BPE tokenizer (every prompt and reply), and the loaders of datasets, safetensors files,
# tokenizer.json, tokenizer_config.json and run configs. Each harness (fuzz_*.c beside this
# script) states the properties it checks besides "no crash, no sanitizer report". The
# corpora start from the test fixtures and grow in build-fuzz/, so later runs go on from
# where earlier ones got.
# Usage: tests/fuzz/run.sh [SECONDS per harness (60)] [HARNESS ...]   (make fuzz)
# Exit status 1 when a harness found a failing input; it is kept as build-fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(math_verify tokenizer loaders)
bash scripts/install_deps.sh --fuzz
out=build-fuzz
mkdir -p "$out"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -I. -Iengine)
common=(runtime/util.c runtime/jsonutil.c runtime/fileio.c)
srcs_math_verify=(engine/math_verify.c)
srcs_tokenizer=(engine/tokenizer_bpe.c "${common[@]}")
srcs_loaders=(engine/dataset.c engine/math_verify.c engine/tokenizer_bpe.c engine/run_config.c
              engine/chat_template.c
              runtime/config.c runtime/safetensors.c "${common[@]}")
libs=(-lpcre2-8 -ljansson -lm)

# seed corpora: the first byte of an input picks what the harness does with the rest
seed() {
    python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
def put(corpus, name, data):
    os.makedirs(f"{out}/corpus_{corpus}", exist_ok=True)
    with open(f"{out}/corpus_{corpus}/seed_{name}", "wb") as f:
        f.write(data)
for i, line in enumerate(open("tests/fixtures/verify_pairs.tsv", encoding="utf-8")):
    p = line.rstrip("\n").split("\t")
    if not line.startswith("#") and len(p) >= 3:
        put("math_verify", str(i), p[2].encode() + b"\0" + p[1].encode())
cases = json.load(open("tests/fixtures/bpe/expected.json"))["tokenizers"]
for t in cases:
    for j, c in enumerate(t["cases"]):
        for sel in range(3):
            put("tokenizer", f"{t['name']}_{j}_{sel}", bytes([sel]) + c["text"].encode("utf-8", "surrogatepass"))
rd = lambda p: open(p, "rb").read()
put("loaders", "gsm8k", b"\0" + rd("tests/fixtures/data/gsm8k_mini.jsonl"))
put("loaders", "math", b"\1" + rd("tests/fixtures/data/math_mini.jsonl"))
put("loaders", "custom", b"\2" + b'{"q": "1+1?", "a": 2}\n{"q": "x", "a": "\\\\boxed{3}"}\n')
put("loaders", "custom_path", b"\2" + b'{"q": "2+2?", "a": {"b": "#### 4"}}\n')
put("loaders", "verl", b"\7" + json.dumps({"prompt": [{"role": "system", "content": "Be exact."},
    {"role": "user", "content": "1/2 + 1/2?"}], "reward_model": {"ground_truth": "1"}}).encode()
    + b"\n" + b'{"prompt": "plain", "reward_model": {"ground_truth": 3}}\n')
put("loaders", "safetensors", b"\3" + rd("tests/fixtures/hf/qwen2_tied/model.safetensors"))
for t in ("split_contig", "split_next", "gpt2"):
    put("loaders", f"tok_{t}", b"\4" + rd(f"tests/fixtures/bpe/{t}/tokenizer.json"))
for c in glob.glob("configs/*.json"):
    put("loaders", "cfg_" + os.path.basename(c), b"\5" + rd(c))
for c in glob.glob("tests/fixtures/**/tokenizer_config.json", recursive=True):
    put("loaders", "tc_" + c.replace("/", "_"), b"\6" + rd(c))
PY
}
seed
failed=0
printf '%-12s %10s %10s %8s  %s\n' harness runs "exec/s" corpus result
for h in "${harnesses[@]}"; do
    var="srcs_${h}[@]"
    clang "${flags[@]}" "tests/fuzz/fuzz_${h}.c" "${!var}" "${libs[@]}" -o "$out/fuzz_$h"
    log="$out/fuzz_$h.log"
    status=ok
    "$out/fuzz_$h" "$out/corpus_$h" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -close_fd_mask=2 -artifact_prefix="$out/" -print_final_stats=1 >"$log" 2>&1 ||
        { status="FAILED: see $log and $out/crash-*"; failed=1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    printf '%-12s %10s %10s %8s  %s\n' "$h" "${runs:-?}" "${rate:-?}" \
        "$(ls "$out/corpus_$h" | wc -l)" "$status"
done
exit $failed
