#!/usr/bin/env bash
# The quantization branch's GPU run, a few minutes on one H200: builds the standalone GPU
# project (common/, kernels/, bench/cuda/, tests/gpu/), then
#   1. gpu_quant_check: fp8 / int8 / int4 weights kept quantized on the GPU vs the CPU backend
#      (GEMV, FP8 W8A8 cuBLASLt, dequantize + cuBLASLt, LM head, fused projections);
#   2. gpu_kernel_check and gpu_attention_check: the KV cache is now an object passed to the
#      ops (kernels/kv_cache.h), so the existing checks must still pass unchanged;
#   3. cuda_llama_bench --quick with bf16, fp8, int8 and int4 projections (Llama-3.1-8B shape):
#      batch-1 decode tok/s against weight bandwidth, prefill tok/s, offline 128/128.
# Logs under $OUT (default /var/tmp/tessera-gpu-out); the summary is $OUT/quant_summary.txt.
# Device command (repository root):  bash tests/gpu/quant_run.sh
# Set SKIP_BENCH=1 for the checks only; TESSERA_FP8_GEMM=0 sends fp8 to the dequantize path.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/var/tmp/tessera-gpu-out}
BUILD=${BUILD:-/var/tmp/build-quant}
mkdir -p "$OUT"
{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || cat .commit 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
} | tee "$OUT/quant_env.txt"
TARGETS="gpu_quant_check gpu_kernel_check gpu_attention_check cuda_llama_bench"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S tests/gpu -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/quant_configure.log" 2>&1 \
    || { echo "FAIL configure"; tail -30 "$OUT/quant_configure.log"; exit 1; }
fi
if ! ninja -C "$BUILD" -j"$(nproc)" $TARGETS >"$OUT/quant_build.log" 2>&1; then
  echo "FAIL build"; grep -E "error|FAILED" "$OUT/quant_build.log" | head -40; exit 1
fi
bin() { find "$BUILD" -name "$1" -type f -perm -u+x | head -1; }
status=0
for check in gpu_quant_check gpu_kernel_check gpu_attention_check; do
  echo "== $check"
  timeout 300 "$(bin $check)" >"$OUT/$check.log" 2>&1
  [ $? -eq 0 ] || status=1
  grep -E "^(FAIL|SUMMARY)" "$OUT/$check.log"
done
if [ -z "${SKIP_BENCH:-}" ]; then
  for w in bf16 fp8 int8 int4; do
    echo "== llama_bench --weights $w"
    timeout 240 "$(bin cuda_llama_bench)" --quick --weights "$w" 2>&1 | tee "$OUT/llama_bench_$w.txt"
  done
fi
{
  cat "$OUT/quant_env.txt"
  grep -h "^SUMMARY" "$OUT"/gpu_*check.log
  grep -h "^FAIL" "$OUT"/gpu_*check.log
  grep -hE "^#|batch-1|prefill|offline" "$OUT"/llama_bench_*.txt 2>/dev/null
} >"$OUT/quant_summary.txt"
exit $status
