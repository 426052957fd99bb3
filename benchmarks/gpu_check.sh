#!/usr/bin/env bash
# One call on a GPU machine: build for sm_90a, run every GPU test, time every kernel against
# the copy and matrix floors measured in the same run, time PyTorch's cuDNN and FlashAttention
# SDPA on the same attention shapes, run the quick demo on the GPU and one RL step of a
# Qwen2.5-0.5B-shaped model; the compact table comes last (and as JSON in the output folder).
#
# Usage: benchmarks/gpu_check.sh [OUTDIR]      (default gpu_check_out)
#   STAGES="build tests bench peer demo e2e compare"   the stages to run (default: all;
#                                              compare: denserl bench against peer_torch.py
#                                              on the Qwen2.5-0.5B shape, bf16)
#   COMPARE_ROWS=auto COMPARE_PEER_ROWS=16     compare with denserl's calls of that many rows
#                                              ("auto": as many as the memory plan fits) and
#                                              the peer's micro-batches of its own (default:
#                                              both the config's 8)
#   E2E_PROMPTS=64                             prompts of the RL step (x 4 samples)
#   E2E_PRECISIONS="bf16 bf16-cudnn"           the precisions it runs in (fp32, bf16, bf16 with
#                                              cuDNN's attention: bf16-cudnn, bf16 with fp32
#                                              logits, no cuBLASLt epilogues, fp32 q/k/v and
#                                              the first attention backward tiles: bf16-plain,
#                                              bf16 with no CUDA graphs in generation:
#                                              bf16-nographs, bf16 with as many rows per model
#                                              call as the memory plan fits: bf16-auto, the
#                                              outcome-only RLOO step with no PRM and no
#                                              reference forward: bf16-rloo, bf16 with the
#                                              block-tile decode attention: bf16-dectiles,
#                                              "auto" rows with gradient checkpointing:
#                                              bf16-ckpt)
#   STAGES=varlen (not in the default)         length-grouped model calls against every call at
#                                              the step's longest row: bench steps of the
#                                              Qwen2.5-0.5B body with a 256-token vocabulary,
#                                              so that responses end at random, bf16, and the
#                                              PyTorch peer on the same lengths (--varlen)
#   STAGES=mfu (not in the default)            training-phase MFU at larger calls: bench steps of
#                                              the 0.5B and 1.5B shapes with as many rows a call
#                                              as the memory plan fits, 64 prompts x 4, bf16
#   MFU_RUNS="qwen2.5-0.5b:auto qwen2.5-1.5b:auto"
#                                              its runs, shape:rows (rows a number, or "auto")
#   MFU_PROMPTS=64                             their prompts per step (x 4 samples; the policy
#                                              update's calls are at most a quarter of the
#                                              rows, its 4 PPO mini-batches), as in the e2e step
#   STAGES=dryrun (not in the default)         `train --dry-run` of the 0.5B bench config in bf16
#                                              with "auto" rows: the GPU memory its models,
#                                              AdamW and generator hold against the plan
#   STAGES=profile (not in the default)        Nsight Compute's kernel times inside one phase
#                                              (PROFILE_RANGE, default policy_update) of one
#                                              bench step, 8 prompts x 4, bf16; the table per
#                                              kernel name goes to profile.txt
# On a GPU machine that cannot install packages, scripts/fetch_gpudeps.sh (run elsewhere)
# leaves jansson and OpenBLAS as .deb files in .gpudeps/debs; they are unpacked into
# .gpudeps/root and built against (nothing is installed system-wide). Otherwise run
# scripts/install_deps.sh first.
set -u
OUTDIR=${1:-${OUT:-gpu_check_out}}
STAGES=${STAGES:-build tests bench peer demo e2e compare}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUTDIR"
T0=$(date +%s)
say() { echo "[gpu_check +$(($(date +%s) - T0))s] $*"; }
want() { [[ " $STAGES " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
nproc_=$(nproc)

CMAKE_EXTRA=()
if [ -d .gpudeps/debs ]; then
    mkdir -p .gpudeps/root
    for f in .gpudeps/debs/*.deb; do dpkg -x "$f" .gpudeps/root; done
    R=$PWD/.gpudeps/root/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$R:$R/openblas-openmp:${LD_LIBRARY_PATH:-}
    CMAKE_EXTRA+=(-DDENSERL_DEPS_ROOT="$PWD/.gpudeps/root")
fi

if want build; then
    say "build (sm_90a, ptxas report in $OUTDIR/build.log)"
    if ! { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
            -DDENSERL_PTXAS_VERBOSE=ON "${CMAKE_EXTRA[@]}" &&
           cmake --build "$BUILD" -j"$nproc_"; } >"$OUTDIR/build.log" 2>&1; then
        tail -30 "$OUTDIR/build.log"
        say "BUILD FAILED"
        exit 1
    fi
    grep -E "spill stores|stack frame" "$OUTDIR/build.log" | grep -v " 0 bytes spill stores" |
        sort | uniq -c | head -5
fi
BIN=$PWD/$BUILD

if want tests; then
    say "GPU tests (each launch checked: DENSERL_CUDA_SYNC=1)"
    (cd "$BUILD" && DENSERL_CUDA_SYNC=1 timeout 300 ctest -R "test_(cuda|gpu)_|test_comm$" -j4 \
        --timeout 120 --output-on-failure) >"$OUTDIR/tests.log" 2>&1
    grep -E "tests passed|Passed|Failed|Skipped|\*\*\*" "$OUTDIR/tests.log" | tail -15
    grep -h "^FAIL" "$OUTDIR/tests.log" | head -20
fi

if want bench; then
    say "kernel benchmarks"
    timeout 240 "$BIN/bench_cuda" --json "$OUTDIR/bench.json" >"$OUTDIR/bench.log" 2>&1 ||
        { tail -5 "$OUTDIR/bench.log"; say "bench_cuda failed"; }
fi

if want peer; then
    say "peer: PyTorch SDPA (cuDNN, FlashAttention-2)"
    PYTHONUNBUFFERED=1 timeout 120 python3 benchmarks/peer_attention.py >"$OUTDIR/peer.json" \
        2>"$OUTDIR/peer.log" || { tail -5 "$OUTDIR/peer.log"; say "peer failed"; }
fi

if want demo; then
    say "quick demo and determinism on the GPU (device auto)"
    (cd "$BUILD" && timeout 200 ctest -R "test_(demo_quick|determinism)" --timeout 150 \
        --output-on-failure) >"$OUTDIR/demo.log" 2>&1
    grep -E "Passed|Failed|tests passed" "$OUTDIR/demo.log" | tail -4
fi

if want e2e; then
    P=${E2E_PROMPTS:-64}
    for prec in ${E2E_PRECISIONS:-bf16 bf16-cudnn}; do
        attn=flash
        [ "$prec" = bf16-cudnn ] && attn=cudnn
        # bf16-plain: bf16 without the fp16 logits, the cuBLASLt epilogues, q/k/v kept in bf16
        # and the 128-key attention backward tiles, to see their share;
        # bf16-nographs: generation's decode steps launched one kernel at a time
        plain=() precision=bf16 rows=()
        [ "$prec" = bf16-plain ] && plain=(env DENSERL_LOGITS=f32 DENSERL_CUBLASLT=0
            DENSERL_QKV_BF16=0 DENSERL_ATTN_BWD_TILES=q128k64)
        [ "$prec" = bf16-nographs ] && plain=(env DENSERL_CUDA_GRAPHS=0)
        # bf16-dectiles: the block-tile decode attention, with decode_prep before it
        [ "$prec" = bf16-dectiles ] && plain=(env DENSERL_ATTN_DECODE=tiles)
        [ "$prec" = bf16-auto ] && rows=(--set 'rl.micro_batch_rows="auto"')
        # bf16-ckpt: against bf16-auto, the updates' recompute against the larger calls
        [ "$prec" = bf16-ckpt ] && rows=(--set 'rl.micro_batch_rows="auto"'
            --set gradient_checkpointing=true)
        # bf16-rloo: the baseline PRIME's step cost is measured against
        [ "$prec" = bf16-rloo ] && rows=(--set rl.estimator=rloo_outcome --set rl.prm_update=off)
        [ "$prec" = fp32 ] && precision=fp32
        say "one RL step, Qwen2.5-0.5B shape, $P prompts x 4 samples, 512 response tokens, $prec"
        rm -rf /tmp/gpu_check_e2e
        timeout "${E2E_TIMEOUT:-150}" ${plain[@]+"${plain[@]}"} "$BIN/denserl" train configs/bench_qwen05b.json \
            --set run_dir=/tmp/gpu_check_e2e --set rl.prompts_per_step="$P" \
            --set precision="$precision" --set attention="$attn" ${rows[@]+"${rows[@]}"} \
            >"$OUTDIR/e2e_$prec.log" 2>&1 ||
            { tail -5 "$OUTDIR/e2e_$prec.log"; say "e2e $prec failed"; }
        grep -m1 "^memory plan" "$OUTDIR/e2e_$prec.log"
        cp /tmp/gpu_check_e2e/metrics.jsonl "$OUTDIR/e2e_${prec}_metrics.jsonl" 2>/dev/null
    done
fi

if want compare; then
    say "denserl bench against the PyTorch stack (peer_torch.py), Qwen2.5-0.5B shape, bf16"
    cmp=()
    case "${COMPARE_ROWS:-}" in
    "") ;;
    auto) cmp+=(--set 'rl.micro_batch_rows="auto"') ;;
    *) cmp+=(--set "rl.micro_batch_rows=$COMPARE_ROWS") ;;
    esac
    [ -n "${COMPARE_PEER_ROWS:-}" ] && cmp+=(--peer-micro-batch "$COMPARE_PEER_ROWS")
    PYTHONUNBUFFERED=1 timeout "${COMPARE_TIMEOUT:-240}" python3 benchmarks/bench_compare.py \
        --denserl "$BIN/denserl" --config configs/bench_qwen05b.json --shape qwen2.5-0.5b \
        --set precision=bf16 ${cmp[@]+"${cmp[@]}"} --warmup 1 --steps 2 \
        --out-dir "$OUTDIR/compare" >"$OUTDIR/compare.log" 2>&1 ||
        { tail -5 "$OUTDIR/compare.log"; say "compare failed"; }
fi
if want varlen; then
    say "length-grouped calls against padded ones: Qwen2.5-0.5B body, 256-token vocabulary, bf16"
    VL=/tmp/gpu_check_varlen
    mkdir -p "$VL"
    cat >"$VL/config.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 256, "hidden_size": 896, "intermediate_size": 4864,
 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
 "max_position_embeddings": 1024, "rope_theta": 1000000.0, "tie_word_embeddings": true}
JSON
    for g in true false; do
        timeout "${VARLEN_TIMEOUT:-120}" "$BIN/denserl" bench configs/bench_qwen05b.json \
            --model-config "$VL/config.json" --set precision=bf16 --set rl.group_by_length=$g \
            --warmup 1 --steps 2 --json "$OUTDIR/varlen_$g.json" >"$OUTDIR/varlen_$g.log" 2>&1 ||
            { tail -5 "$OUTDIR/varlen_$g.log"; say "varlen $g failed"; }
    done
    say "the PyTorch peer on the same response lengths (micro-batches padded to their longest)"
    [ -f "$OUTDIR/varlen_true.json" ] && PYTHONUNBUFFERED=1 timeout "${VARLEN_TIMEOUT:-120}" \
        python3 benchmarks/bench_compare.py --denserl-json "$OUTDIR/varlen_true.json" \
        --model-config "$VL/config.json" --varlen --warmup 1 --steps 2 \
        --out-dir "$OUTDIR/varlen_compare" >"$OUTDIR/varlen_compare.log" 2>&1 ||
        { tail -5 "$OUTDIR/varlen_compare.log"; say "varlen compare failed"; }
fi
if want mfu; then
    for run in ${MFU_RUNS:-qwen2.5-0.5b:auto qwen2.5-1.5b:auto}; do
        shape=${run%%:*} rows=${run#*:}
        say "MFU: $shape, $rows-row calls, ${MFU_PROMPTS:-64} prompts x 4, bf16"
        [ "$rows" = auto ] && rows='"auto"'
        name=mfu_${shape}_${run#*:}
        timeout "${MFU_TIMEOUT:-150}" "$BIN/denserl" bench configs/bench_qwen05b.json \
            --shape "$shape" --set precision=bf16 --set rl.prompts_per_step="${MFU_PROMPTS:-64}" \
            --set rl.micro_batch_rows="$rows" --warmup 1 --steps 1 --json "$OUTDIR/$name.json" \
            >"$OUTDIR/$name.log" 2>&1 || { tail -5 "$OUTDIR/$name.log"; say "$name failed"; }
        grep -m1 "^memory plan" "$OUTDIR/$name.log"
    done
fi
if want dryrun; then
    say "train --dry-run, Qwen2.5-0.5B shape, bf16, \"auto\" rows: memory held against the plan"
    timeout 120 "$BIN/denserl" train configs/bench_qwen05b.json --set run_dir=/tmp/gpu_check_dry \
        --set precision=bf16 --set rl.micro_batch_rows='"auto"' --dry-run >"$OUTDIR/dryrun.log" 2>&1 ||
        { tail -3 "$OUTDIR/dryrun.log"; say "dry run failed"; }
    grep -E "^memory plan|^dry run" "$OUTDIR/dryrun.log"
fi
if want profile; then
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    R=${PROFILE_RANGE:-policy_update}
    say "Nsight Compute: kernel times inside '$R' of one bench step (8 prompts x 4, bf16)"
    if [ -z "$NCU" ]; then
        say "no ncu found"
    else
        timeout "${PROFILE_TIMEOUT:-240}" "$NCU" --nvtx --nvtx-include "$R/" \
            --metrics gpu__time_duration.sum --cache-control none --clock-control none --csv \
            --launch-count "${PROFILE_COUNT:-6000}" \
            --log-file "$OUTDIR/ncu.csv" "$BIN/denserl" bench configs/bench_qwen05b.json \
            --shape qwen2.5-0.5b --set precision=bf16 --set rl.prompts_per_step=8 --warmup 0 \
            --steps 1 >"$OUTDIR/profile.log" 2>&1 || { tail -5 "$OUTDIR/profile.log"; say "profile failed"; }
        python3 benchmarks/ncu_summary.py "$OUTDIR/ncu.csv" --top 30 --json "$OUTDIR/profile.json" \
            >"$OUTDIR/profile.txt" 2>&1
        head -24 "$OUTDIR/profile.txt"
    fi
fi
say "done"
python3 benchmarks/gpu_table.py "$OUTDIR"
