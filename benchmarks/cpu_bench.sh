#!/usr/bin/env bash
# CPU training throughput, denserl against PyTorch on the same ~10M-parameter Llama shape,
# the same thread count, in the same run. Needs torch + transformers for the peer
# (pip install torch transformers); without them only denserl is timed.
# Usage: benchmarks/cpu_bench.sh [extra shape flags for both programs]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
ITERS=${ITERS:-5}
[ -x "$BUILD/bench_cpu" ] || cmake --build "$BUILD" --target bench_cpu
ours=$("$BUILD/bench_cpu" --threads "$THREADS" --iters "$ITERS" "$@")
echo "$ours"
if python3 -c "import torch, transformers" 2>/dev/null; then
    peer=$(python3 benchmarks/peer_torch_cpu.py --threads "$THREADS" --iters "$ITERS" "$@" | tail -n 1)
    echo "$peer"
    python3 - "$ours" "$peer" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"denserl {a['tokens_per_s']:.0f} tok/s, torch {b['tokens_per_s']:.0f} tok/s "
      f"({b['torch']}), ratio {a['tokens_per_s'] / b['tokens_per_s']:.2f}x, "
      f"{a['threads']} threads, {a['params']} params")
PY
else
    echo "torch/transformers not importable: peer skipped"
fi
