#!/usr/bin/env bash
# The quantized GEMV on the H200 from prebuilt binaries (tests/gpu/pack.sh or any folder with
# bin/gpu_quant_check and bin/cuda_llama_bench): gpu_quant_check against the CPU backend, then
# each projection alone and small-batch decode of the Llama-3.1-8B shape per weight scheme, with the tensor-core GEMV
# (gemv_quant_mma.cu) and with the CUDA-core one (TESSERA_QUANT_GEMV=simt).
#   PREBUILT=/var/tmp/tg OUT=... bash tests/gpu/quant_gemv_run.sh [schemes...]
set -uo pipefail
T=${PREBUILT:?set PREBUILT to the unpacked binaries}
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$T/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
schemes=${*:-int4 fp8 bf16}
status=0
timeout 300 "$T/bin/gpu_quant_check" >"$OUT/gpu_quant_check.log" 2>&1 || status=1
grep -E "^(FAIL|SUMMARY)" "$OUT/gpu_quant_check.log"
for w in $schemes; do
  for impl in ${IMPLS:-mma simt}; do
    [ "$w" = bf16 ] && [ "$impl" = simt ] && continue
    echo "== $w ($impl)"
    TESSERA_QUANT_GEMV=$impl timeout 100 "$T/bin/cuda_llama_bench" --gemv-only --weights "$w" \
      2>&1 | tee "$OUT/gemv_${w}_$impl.txt" | grep -E "matmul|FAIL"
    TESSERA_QUANT_GEMV=$impl timeout 200 "$T/bin/cuda_llama_bench" --decode-only --weights "$w" \
      2>&1 | tee "$OUT/decode_${w}_$impl.txt" | grep -E "^#|decode|FAIL"
  done
done
exit $status
