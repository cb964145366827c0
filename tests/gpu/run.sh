#!/usr/bin/env bash
# Builds the CUDA backend and runs every GPU check (then, unless --checks-only, the GPU
# benchmarks via bench/run_gpu.sh). Logs go to $OUT (default /var/tmp/tessera-gpu-out).
# Build: the whole project (cmake -DTESSERA_GRPC=OFF) into /var/tmp/build; where the
# machine lacks the server's packages, the standalone GPU project (cmake -S tests/gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/var/tmp/tessera-gpu-out}
BUILD=${BUILD:-/var/tmp/build}
mkdir -p "$OUT"
TARGETS="gpu_kernel_check gpu_attention_check gpu_sampling_check cuda_attention_bench cuda_llama_bench"
JOBS=$(nproc)

{
  echo "commit: $(cat .commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  nvcc --version | tail -1
} | tee "$OUT/env.txt"

if [ ! -f "$BUILD/build.ninja" ]; then
  if ! cmake -S . -B "$BUILD" -G Ninja -DTESSERA_GRPC=OFF -DTESSERA_CUDA=ON \
      -DCMAKE_BUILD_TYPE=Release >"$OUT/configure.log" 2>&1; then
    echo "full configure failed (see configure.log); using the standalone GPU project"
    tail -5 "$OUT/configure.log"
    rm -rf "$BUILD"
    cmake -S tests/gpu -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >>"$OUT/configure.log" 2>&1 \
      || { echo "FAIL configure"; tail -30 "$OUT/configure.log"; exit 1; }
  fi
fi
if ! ninja -C "$BUILD" -j"$JOBS" $TARGETS >"$OUT/build.log" 2>&1; then
  echo "FAIL build"; grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1
fi
bin() { find "$BUILD" -name "$1" -type f -perm -u+x | head -1; }

status=0
for check in gpu_kernel_check gpu_attention_check gpu_sampling_check; do
  echo "== $check"
  "$(bin $check)" 2>&1 | tee "$OUT/$check.log" | grep -E "^(FAIL|SUMMARY)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
if [ -x "$(bin gpu_model_check)" ] && [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  echo "== gpu_model_check"
  "$(bin gpu_model_check)" models/SmolLM2-135M-Instruct.Q4_1.gguf 2>&1 | tee "$OUT/gpu_model_check.log" \
    | grep -E "^(FAIL|PASS|SUMMARY)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "SKIP whole-model check (needs gpu_model_check and the default model)"
fi
echo "GPU checks: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
if [ "${1:-}" != "--checks-only" ]; then
  BUILD="$BUILD" OUT="$OUT" bash bench/run_gpu.sh "${@}"
fi
exit $status
