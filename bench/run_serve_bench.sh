#!/usr/bin/env bash
# Runs the serving benchmarks recorded in bench/results/serving-cpu.md: the same load against
# each batching policy, then short-request TTFT while long prompts keep arriving, with chunked
# prefill on and off. One fresh server per configuration, on a free port.
#   TESSERA_BIN=build/server/tessera bench/run_serve_bench.sh [out_dir]
#   BENCH_PARTS="policies" or "mixed" runs one part only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TESSERA_BIN:-build/server/tessera}
out=${1:-/tmp/tessera-serve-bench}
mkdir -p "$out"
port=${BENCH_PORT:-18431}

serve() {  # serve <name> <flags...>: starts the server, waits for /ready
  local name=$1
  shift
  "$bin" serve --port "$port" --grpc-port 0 --log-level warn "$@" >"$out/$name.server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server $name did not become ready" >&2
  return 1
}

stop() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
}
trap 'kill -TERM "${server_pid:-}" 2>/dev/null || true' EXIT

bench() {  # bench <name> <serve_bench args...>
  local name=$1
  shift
  python3 bench/serve_bench.py --base-url "http://127.0.0.1:$port" --json-out "$out/$name.json" \
    "$@" | tee "$out/$name.txt"
}

# 1. Policies on one load: 32 requests, 32-token prompts, 16 output tokens, all at once,
#    at most 16 in flight. (Sized for a 2-core machine; scale up on real hardware.)
policy_load=(--num-prompts 32 --input-len 32 --output-len 16 --request-rate inf
             --max-concurrency 16 --seed 1)
if [[ " ${BENCH_PARTS:-policies mixed} " == *" policies "* ]]; then
  for policy in continuous dynamic static; do
    serve "policy-$policy" --policy "$policy" --max-num-seqs 16 --static-batch-size 8
    bench "policy-$policy" "${policy_load[@]}"
    stop
  done
fi

# 2. Short requests (16 in / 4 out, 0.5 req/s) while 256-token prompts arrive (0.1/s), a load
#    below the machine's capacity: TTFT of the short ones with chunked prefill (64-token
#    budget per step) vs without (a long prompt's whole prefill in one step).
mixed_load=(--num-prompts 12 --input-len 16 --output-len 4 --request-rate 0.5 --seed 2
            --long-num-prompts 3 --long-input-len 256 --long-output-len 4 --long-rate 0.1)
if [[ " ${BENCH_PARTS:-policies mixed} " == *" mixed "* ]]; then
  serve chunked-on --max-num-batched-tokens 64
  bench chunked-on "${mixed_load[@]}"
  stop
  serve chunked-off --no-chunked-prefill --max-num-batched-tokens 64
  bench chunked-off "${mixed_load[@]}"
  stop
fi
echo "results in $out"
