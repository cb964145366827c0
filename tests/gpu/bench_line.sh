# Sourced by the GPU run scripts: bench_line LABEL ARGS... runs $BIN/engine_bench on CUDA with
# ARGS (log under $OUT) and prints "LABEL | output tok/s | host time per step"; on failure it
# prints the log's tail and sets status=1. BENCH_TIMEOUT (default 150 s) bounds one run.
bench_line() {
  local label=$1; shift
  local log="$OUT/eb_$(echo "$label" | tr ' /=+' '____').log"
  if timeout "${BENCH_TIMEOUT:-150}" "$BIN/engine_bench" --device cuda --warmup 1 "$@" >"$log" 2>&1; then
    echo "$label | $(grep -E '^throughput' "$log" | sed 's/.*, //') | $(grep -E '^device' "$log" | sed 's/^device *//')"
  else
    echo "$label | FAILED: $(tail -2 "$log" | tr '\n' ' ')"; status=1
  fi
}
