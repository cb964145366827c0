#!/usr/bin/env bash
# Speculative decoding on an H200 with the binaries tests/gpu/pack.sh made (BIN_DIR/bin).
#   spec_run.sh shapes BIN_DIR          Llama-3.1-8B shape, dummy weights: verify-step cost
#                                       against k (early exit with one layer, so drafting is
#                                       nearly free) at batch 1/16/64, and throughput with a
#                                       Llama-3.2-1B-shape dummy draft at 1/16/64 (off = k=0)
#   spec_run.sh model BIN_DIR MODEL     the default model: greedy outputs with each proposer
#                                       equal those without (tests/gpu/spec_check.py; also
#                                       with --deterministic), then bench/spec_bench.py
#   spec_run.sh cpu BIN_DIR MODEL       bench/spec_bench.py on this machine's 16 CPU cores
# Logs and a summary under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=$1
BIN=$2/bin
export LD_LIBRARY_PATH=$2/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
status=0
EB="$BIN/engine_bench --device cuda --input-len 512 --output-len 96 --warmup 1"
T8="dummy:configs/models/llama-3.1-8b.json"
T1="dummy:configs/models/llama-3.2-1b.json"

bench_line() {  # label, then engine_bench arguments
  local label=$1; shift
  local log="$OUT/eb_$(echo "$label" | tr ' /=' '___').log"
  if timeout 100 $EB "$@" >"$log" 2>&1; then
    echo "$label | $(grep -E '^throughput' "$log" | sed 's/.*, //') | $(grep -E '^steps' "$log" | sed 's/^steps *//')"
  else
    echo "$label | FAILED: $(tail -2 "$log" | tr '\n' ' ')"; status=1
  fi
}

if [ "$MODE" = shapes ]; then
  {
    echo "## verify-step cost against k (8B shape, bf16, early exit with 1 layer, fixed k)"
    for b in 1 16 64; do
      bench_line "B=$b k=0" --model $T8 --num-prompts $b
      for k in 1 2 4 8; do
        bench_line "B=$b k=$k" --model $T8 --num-prompts $b --speculative early-exit \
          --speculative-early-exit-layers 1 --speculative-fixed --num-speculative-tokens $k \
          --speculative-max-step-tokens 100000
      done
    done
    echo "## 1B-shape dummy draft (random weights: acceptance ~0, the overhead side)"
    for b in 1 16 64; do
      bench_line "B=$b draft adaptive" --model $T8 --num-prompts $b --speculative draft --draft-model $T1
      bench_line "B=$b draft fixed k=4" --model $T8 --num-prompts $b --speculative draft \
        --draft-model $T1 --speculative-fixed --speculative-max-step-tokens 100000
    done
  } 2>&1 | tee "$OUT/spec_shapes.txt"
elif [ "$MODE" = model ]; then
  MODEL=$3
  python3 tests/gpu/spec_check.py "$BIN/tessera" "$MODEL" 2>&1 | tee "$OUT/spec_check.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  SPEC_METHODS=ngram,early-exit python3 tests/gpu/spec_check.py "$BIN/tessera" "$MODEL" \
    --deterministic 2>&1 | tee "$OUT/spec_check_deterministic.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  timeout 300 python3 bench/spec_bench.py --bin "$BIN/tessera" --model "$MODEL" --device cuda \
    --config none --config ngram --config "early-exit --speculative-early-exit-layers 8" \
    --config "draft --draft-model $MODEL" --batches 1,4,16 --max-tokens 192 \
    --out "$OUT/spec_bench.jsonl" 2>&1 | tee "$OUT/spec_bench_cuda.md"
elif [ "$MODE" = cpu ]; then
  MODEL=$3
  timeout 300 python3 bench/spec_bench.py --bin "$BIN/tessera" --model "$MODEL" --device cpu \
    --config none --config ngram --config "early-exit --speculative-early-exit-layers 8" \
    --batches 1 --max-tokens 128 --extra "--num-threads 16" \
    --out "$OUT/spec_bench.jsonl" 2>&1 | tee "$OUT/spec_bench_cpu.md"
else
  echo "usage: spec_run.sh shapes|model|cpu BIN_DIR [MODEL]"; exit 2
fi
echo "SUMMARY spec_run $MODE: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
