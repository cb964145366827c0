#!/usr/bin/env bash
# The engine on the GPU (bench/engine_bench.cpp): random bf16 weights of the Llama-3.1-8B
# shape. Batch-1 decode, 2k-token prefill, and offline throughput (every request queued at
# once) at the input/output lengths of TensorRT-LLM's published H200 table.
# Usage: run_gpu_engine.sh ENGINE_BENCH [--quick]   (logs under $OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
EB=$1
OUT=${OUT:-/var/tmp/tessera-gpu-out}
QUICK=${2:-}
MODEL="dummy:configs/models/llama-3.1-8b.json?dtype=bf16"
run() {
  local name=$1
  shift
  echo "== engine_bench $name: $*"
  "$EB" --model "$MODEL" --device cuda "$@" 2>"$OUT/eb_$name.err" | tee "$OUT/eb_$name.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL engine_bench $name"; tail -5 "$OUT/eb_$name.err"; }
}
run decode_b1 --num-prompts 1 --input-len 128 --output-len 1024
run prefill_2k --num-prompts 16 --input-len 2048 --output-len 1 --max-num-batched-tokens 8192
[ "$QUICK" = "--quick" ] && exit 0
run offline_128 --num-prompts 1024 --input-len 128 --output-len 128 --max-num-seqs 1024 \
  --max-num-batched-tokens 8192
run offline_1000 --num-prompts 256 --input-len 1000 --output-len 1000 --max-num-seqs 512 \
  --max-num-batched-tokens 8192
run offline_2048 --num-prompts 256 --input-len 2048 --output-len 2048 --max-num-seqs 512 \
  --max-num-batched-tokens 8192
