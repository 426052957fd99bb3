#!/usr/bin/env bash
# The GPU check's report tools on fixtures, so that they work the day a GPU run needs them:
# benchmarks/ncu_summary.py groups Nsight Compute kernel times by name (details page with
# mixed units and thousands separators, raw page with a units row, names with arguments and
# templates) and refuses a log without kernels; benchmarks/gpu_table.py prints the kernel
# table from a bench.json and an MFU line from a bench report, writes summary.json, and refuses
# a folder that is not there.
set -u
source "$(dirname "$0")/shtest.sh"
SUM="python3 $ROOT/benchmarks/ncu_summary.py"

cat >"$W/details.csv" <<'CSV'
==PROF== Connected to process 1 (denserl)
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1","denserl","h","void rms_kernel<128, (int)4>(float *, const float *, int)","1","7","(256, 1, 1)","(10, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","usecond","12.50"
"1","1","denserl","h","nvjet_sm90_tss_128x256_64x4_1x2_h_badd_coopA_NTN","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","msecond","1.25"
"2","1","denserl","h","void rms_kernel<64, (int)2>(float *, const float *, int)","1","7","(256, 1, 1)","(10, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","nsecond","2,500"
==PROF== Disconnected from process 1
CSV
out=$($SUM "$W/details.csv" --json "$W/d.json" 2>&1)
expect "details page: kernels and total" "3 kernels profiled, 1.26 ms of kernel time" "$out"
first=$(echo "$out" | sed -n 3p)
expect "details page: the product first" "nvjet_sm90_tss_128x256_64x4_1x2_h_badd_coopA_NTN                              1     1.250   1250.0  98.8%" "$first"
expect "details page: template instances grouped" "rms_kernel                                                                    2     0.015      7.5   1.2%" "$out"
got=$(python3 -c "import json; d = json.load(open('$W/d.json')); print(d['kernels'], [r['launches'] for r in d['by_name']])")
expect_eq "details page: JSON" "3 [1, 2]" "$got"

cat >"$W/raw.csv" <<'CSV'
"ID","Kernel Name","gpu__time_duration.sum"
"","","usecond"
"0","adamw_kernel(float *, long)","3,757.10"
"1","mx_cast_kernel(__nv_bfloat16 *, const float *, long, long)","15.70"
"2","mx_cast_kernel(__nv_bfloat16 *, const float *, long, long)","14.30"
CSV
out=$($SUM "$W/raw.csv" 2>&1)
expect "raw page: total" "3 kernels profiled, 3.79 ms of kernel time" "$out"
expect "raw page: grouped casts" "mx_cast_kernel                                                                2     0.030     15.0   0.8%" "$out"

printf '==PROF== no kernels were profiled\n' >"$W/empty.csv"
out=$($SUM "$W/empty.csv" 2>&1)
rc=$?
expect_eq "a log without kernels fails" "1" "$rc"
expect "a log without kernels says so" "no CSV header" "$out"

mkdir -p "$W/gc"
cp "$ROOT/benchmarks/results/gpu_check_h200_run1/bench.json" "$W/gc/"
out=$(python3 "$ROOT/benchmarks/gpu_table.py" "$W/gc" 2>&1)
expect "gpu_table: floors line" "copy 4238 GB/s, sgemm 51.3 TFLOP/s, bf16 gemm 789 TFLOP/s" "$out"
expect "gpu_table: a kernel row" "adamw                        n=128M                                0.952    3946.1     0.93x" "$out"
[ -s "$W/gc/summary.json" ] && ok "gpu_table: summary.json written" || bad "gpu_table: no summary.json"
cp "$ROOT/benchmarks/results/gpu_check_h200_run2/mfu_qwen2.5-1.5b_auto.json" "$W/gc/"
out=$(python3 "$ROOT/benchmarks/gpu_table.py" "$W/gc" 2>&1)
expect "gpu_table: an MFU line, the plan against the use above the CUDA context" \
    "MFU, qwen2.5-1.5b_auto, 58-row calls: logprobs 68%, prm_update 62%, policy_update 60%; device use above the context 131.7 GiB (planned 133.5 GiB)" "$out"
out=$(python3 "$ROOT/benchmarks/gpu_table.py" "$W/missing" 2>&1)
rc=$?
expect_eq "gpu_table: a missing folder fails" "1" "$rc"
expect "gpu_table: a missing folder says how to call it" "usage: gpu_table.py OUTDIR" "$out"
finish
