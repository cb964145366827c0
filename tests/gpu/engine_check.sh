#!/usr/bin/env bash
# The engine and the `tessera` binary on the GPU: `generate` picks CUDA by itself and agrees
# with the CPU backend, `serve` answers real HTTP clients (tests/gpu/serve_check.py).
# Usage: engine_check.sh BIN_DIR MODEL.gguf   (logs under $OUT)
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=$1
MODEL=$2
OUT=${OUT:-/var/tmp/tessera-gpu-out}
T=$BIN/tessera
status=0
fail() { echo "FAIL $*"; status=1; }

echo "== generate --device auto"
"$T" generate -m "$MODEL" -p "The capital of France is" -n 24 -t 0 >"$OUT/gen_auto.txt" 2>"$OUT/gen_auto.err"
if grep -q "^\[cuda\]" "$OUT/gen_auto.err"; then echo "PASS auto picked cuda: $(tail -1 "$OUT/gen_auto.err")"
else fail "auto did not pick cuda: $(tail -3 "$OUT/gen_auto.err")"; fi

echo "== generate: cuda vs cpu, greedy, 48 tokens"
same=0
prompts=("The capital of France is" "def fibonacci(n):" "Once upon a time, a small robot"
         "The three primary colors are" "Water boils at" "In 1969, Apollo 11")
for p in "${prompts[@]}"; do
  g=$("$T" generate -m "$MODEL" -p "$p" -n 48 -t 0 --device cuda 2>/dev/null)
  c=$("$T" generate -m "$MODEL" -p "$p" -n 48 -t 0 --device cpu --threads 8 2>/dev/null)
  [ -n "$g" ] || fail "cuda generate printed nothing for '$p'"
  [ "$g" = "$c" ] && same=$((same + 1))
  printf 'prompt %q\n  cuda: %q\n  cpu:  %q\n' "$p" "$g" "$c" >>"$OUT/gen_compare.txt"
done
echo "INFO generate cuda vs cpu: $same/${#prompts[@]} greedy texts identical (see gen_compare.txt)"

echo "== serve"
PORT=8199
"$T" serve --model "$MODEL" --port $PORT --grpc-port 0 --max-num-seqs 64 >"$OUT/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
grep -m1 -E "device (cuda|cpu)" "$OUT/serve.log"
python3 tests/gpu/serve_check.py "http://127.0.0.1:$PORT" 2>&1 | tee "$OUT/serve_check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "serve exited with $rc on SIGTERM (tail of serve.log below)"
grep -E "error|FATAL|terminate" "$OUT/serve.log" | head -5
echo "SUMMARY engine_check: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
