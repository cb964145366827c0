#!/usr/bin/env bash
# Pipelined steps on an H200 with the binaries tests/gpu/pack.sh made (BIN_DIR/bin):
# host time per decode step (the device's idle time between steps, from CUDA events) at 1,
# 64 and 256 sequences with --async-scheduling on and off, on the Llama-3.1-8B shape (dummy
# bf16 weights) and the default model; then tests/gpu/pipeline_check.py (outputs identical
# with pipelining on and off).
#   pipeline_run.sh BIN_DIR MODEL.gguf      (logs and a summary under $OUT)
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=$1/bin
MODEL=$2
export LD_LIBRARY_PATH=$1/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
status=0
T8="dummy:configs/models/llama-3.1-8b.json?dtype=bf16"

source tests/gpu/bench_line.sh

{
  echo "## host time per decode step (input 128, output 256; all requests at once)"
  for model in "$T8" "$MODEL"; do
    for b in 1 64 256; do
      for a in off on; do
        bench_line "$(basename "${model%%\?*}") B=$b async=$a" --model "$model" --num-prompts $b \
          --max-num-seqs $b --input-len 128 --output-len 256 --max-num-batched-tokens 8192 \
          --async-scheduling $a
      done
    done
  done
} | tee "$OUT/pipeline_bench.txt"

python3 tests/gpu/pipeline_check.py "$BIN/tessera" "$MODEL" 2>&1 | tee "$OUT/pipeline_check.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
