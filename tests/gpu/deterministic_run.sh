#!/usr/bin/env bash
# Deterministic mode and CUDA graph-capture faults on one H200, with the prebuilt binaries of
# tests/gpu/pack.sh (BIN_DIR holds tessera and gpu_deterministic_check):
#   1. gpu_deterministic_check: the batch-invariant GEMM (bitwise over sub-batches, accuracy
#      vs fp64) and the model's logits for 32 sequences batched vs alone, bitwise;
#   2. `tessera serve --deterministic`: 32 concurrent greedy requests equal their solo runs
#      (gated); the default server's count of differing ones is reported;
#   3. TESSERA_DEBUG_FAIL_GRAPH_CAPTURE=1 and =end: every decode-step capture fails, the
#      server warns once per size, keeps serving, and its greedy texts equal the normal
#      server's (graphs replay the same kernels);
#   4. the cost: decode tok/s at 1 and 32 concurrent requests, deterministic on and off.
# Usage: deterministic_run.sh BIN_DIR MODEL.gguf   (logs under $OUT, summary
# $OUT/deterministic_summary.txt; exit 1 on any FAIL)
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/gpu/device_env.sh
source tests/gpu/device_env.sh  # NCCL (linked by the CUDA backend) from the image's wheel
BIN=$1
MODEL=$2
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
T=$BIN/tessera
PORT=8197
status=0
fail() { echo "FAIL $*"; status=1; }
{
  echo "commit: $(cat "$BIN/../commit" 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
} | tee "$OUT/det_env.txt"

# start_server LOG [serve flags...]: starts `tessera serve` (env as given by the caller) and
# waits for /ready; sets $pid.
start_server() {
  local log=$1
  shift
  "$T" serve --model "$MODEL" --port $PORT --grpc-port 0 --max-num-seqs 64 "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && return 0
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
  done
  fail "server did not become ready ($log)"
  tail -5 "$log"
  return 1
}
stop_server() {
  kill -TERM $pid 2>/dev/null
  wait $pid
  local rc=$?
  [ $rc -eq 0 ] || fail "serve exited with $rc on SIGTERM"
}
check() { python3 tests/gpu/det_serve_check.py "http://127.0.0.1:$PORT" "$@"; }

echo "== 1. gpu_deterministic_check"
if [ -x "$BIN/gpu_deterministic_check" ]; then
  timeout 600 "$BIN/gpu_deterministic_check" "$MODEL" >"$OUT/gpu_deterministic_check.log" 2>&1 ||
    status=1
  grep -E "^(PASS|FAIL|INFO|SUMMARY)" "$OUT/gpu_deterministic_check.log"
else
  echo "SKIP no $BIN/gpu_deterministic_check"
fi

echo "== 2. serve: 32 concurrent greedy requests vs solo"
if start_server "$OUT/det_serve_default.log"; then
  check invariance "$OUT/det_texts_default.json" 2>&1 | tee "$OUT/det_invariance_default.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  check throughput "deterministic-off" 2>&1 | tee "$OUT/det_throughput_off.log"
  stop_server
fi
if start_server "$OUT/det_serve_on.log" --deterministic; then
  grep -m1 "deterministic on" "$OUT/det_serve_on.log" || fail "--deterministic not in the engine line"
  check invariance "$OUT/det_texts_on.json" --gate 2>&1 | tee "$OUT/det_invariance_on.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  check throughput "deterministic-on" 2>&1 | tee "$OUT/det_throughput_on.log"
  stop_server
fi
# The environment variable works like the flag.
if TESSERA_DETERMINISTIC=1 start_server "$OUT/det_serve_env.log"; then
  grep -q "deterministic on" "$OUT/det_serve_env.log" && echo "PASS TESSERA_DETERMINISTIC=1" ||
    fail "TESSERA_DETERMINISTIC=1 did not turn deterministic mode on"
  stop_server
fi

echo "== 3. failed graph captures fall back to eager steps"
for mode in 1 end; do
  if TESSERA_DEBUG_FAIL_GRAPH_CAPTURE=$mode start_server "$OUT/det_capture_fail_$mode.log"; then
    check compare "$OUT/det_texts_default.json" 2>&1 | tee "$OUT/det_capture_fail_$mode.check"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    n=$(grep -c "graph capture of a .* failed" "$OUT/det_capture_fail_$mode.log")
    [ "$n" -ge 1 ] && echo "PASS capture mode $mode: $n warning(s), one per step size" ||
      fail "capture mode $mode: no capture-failure warning in the log"
    stop_server
  fi
done

{
  cat "$OUT/det_env.txt"
  grep -h "^SUMMARY" "$OUT/gpu_deterministic_check.log" 2>/dev/null
  grep -h "^INFO" "$OUT/gpu_deterministic_check.log" 2>/dev/null
  echo "default server:       $(grep -h "^INFO" "$OUT/det_invariance_default.log" 2>/dev/null)"
  echo "deterministic server: $(grep -h "^INFO" "$OUT/det_invariance_on.log" 2>/dev/null)"
  grep -h "^RESULT" "$OUT"/det_throughput_*.log 2>/dev/null
  grep -h "^FAIL" "$OUT"/gpu_deterministic_check.log "$OUT"/det_*.log "$OUT"/det_*.check 2>/dev/null
  echo "status: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
} | tee "$OUT/deterministic_summary.txt"
exit $status
