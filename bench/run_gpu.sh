#!/usr/bin/env bash
# Runs the GPU benchmarks (built by tests/gpu/run.sh into $BUILD) and writes their
# markdown tables under $OUT. --quick: a reduced set of shapes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/var/tmp/tessera-gpu-out}
BUILD=${BUILD:-/var/tmp/build}
QUICK=""
for a in "$@"; do [ "$a" = "--quick" ] && QUICK="--quick"; done
bin() { find "$BUILD" -name "$1" -type f -perm -u+x | head -1; }
if [ -n "${PREBUILT:-}" ]; then
  BUILD=$PREBUILT/bin
  export LD_LIBRARY_PATH=$PREBUILT/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
echo "== attention_bench"
"$(bin cuda_attention_bench)" $QUICK 2>&1 | tee "$OUT/attention_bench.md"
echo "== torch_sdpa_bench"
PYTHONUNBUFFERED=1 python3 bench/torch_sdpa_bench.py $QUICK 2>&1 | tee "$OUT/torch_sdpa.md"
echo "== llama_bench"
"$(bin cuda_llama_bench)" $QUICK 2>&1 | tee "$OUT/llama_bench.txt"
if [ -n "$(bin engine_bench)" ]; then
  bash bench/run_gpu_engine.sh "$(bin engine_bench)" $QUICK
fi
