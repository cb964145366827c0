#!/usr/bin/env bash
# Sampling on the device with penalties, min_p and logprobs, on an H200 with binaries packed
# from this tree (BIN_DIR/bin, BIN_DIR/lib):
#   sampling_run.sh kernels BIN_DIR          the sampler checks, and host time per decode step
#                                            on the Llama-3.1-8B shape (dummy bf16 weights)
#   sampling_run.sh model BIN_DIR MODEL      the same on the default model, and
#                                            tests/gpu/pipeline_check.py over HTTP
# Host time per step is engine_bench's "device" line: the device's idle time between steps.
# Logs and a summary go under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
phase=$1
BIN=$2/bin
export LD_LIBRARY_PATH=$2/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
status=0
PENALTIES="--temperature 0.8 --min-p 0.05 --presence-penalty 0.3 --frequency-penalty 0.5
  --repetition-penalty 1.2 --logprobs 5"

source tests/gpu/bench_line.sh
BENCH_TIMEOUT=200

host_time() {  # model
  local m=$1 name; name=$(basename "${1%%\?*}")
  for b in 1 64 256; do
    for a in off on; do
      # shellcheck disable=SC2086
      bench_line "$name B=$b penalties+logprobs async=$a" --model "$m" --num-prompts $b \
        --max-num-seqs $b --input-len 128 --output-len 256 --max-num-batched-tokens 8192 \
        --async-scheduling $a $PENALTIES
    done
  done
}

case $phase in
  kernels)
    for c in gpu_sampling_check gpu_sampling_contract_check; do
      "$BIN/$c" 2>&1 | tee "$OUT/$c.txt"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    done
    host_time "dummy:configs/models/llama-3.1-8b.json?dtype=bf16" | tee "$OUT/sampling_bench_8b.txt"
    ;;
  model)
    MODEL=$3
    host_time "$MODEL" | tee "$OUT/sampling_bench_default.txt"
    python3 tests/gpu/pipeline_check.py "$BIN/tessera" "$MODEL" 2>&1 | tee "$OUT/pipeline_check.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    ;;
  *) echo "usage: sampling_run.sh kernels|model BIN_DIR [MODEL]" >&2; exit 2 ;;
esac
exit $status
