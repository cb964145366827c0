#!/usr/bin/env bash
# Builds the CUDA backend and runs every GPU check (then, unless --checks-only, the GPU
# benchmarks via bench/run_gpu.sh). Logs go to $OUT (default /var/tmp/tessera-gpu-out).
# Build: the whole project (cmake -DTESSERA_GRPC=OFF) into /var/tmp/build; where the
# machine lacks the server's packages, the standalone GPU project (cmake -S tests/gpu).
# PREBUILT=DIR skips the build and runs the binaries tests/gpu/pack.sh put in DIR/bin
# (with DIR/lib): the whole project built on Debian, engine and `tessera` included.
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

# PCRE2 headers (model/ needs them) may travel as Debian packages in tests/gpu/debs/ (not in
# git; fetch with: cd tests/gpu/debs && apt-get download libpcre2-dev libpcre2-8-0).
if ls tests/gpu/debs/*.deb >/dev/null 2>&1 && ! pkg-config --exists libpcre2-8 2>/dev/null; then
  root=/var/tmp/pcre2root
  mkdir -p $root && for d in tests/gpu/debs/*.deb; do dpkg -x "$d" $root; done
  for pc in $root/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
    sed -i "s|^prefix=.*|prefix=$root/usr|" "$pc"
  done
  export PKG_CONFIG_PATH=$root/usr/lib/x86_64-linux-gnu/pkgconfig
  export LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -n "${PREBUILT:-}" ]; then
  BUILD=$PREBUILT/bin
  export LD_LIBRARY_PATH=$PREBUILT/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "prebuilt: $(cat "$PREBUILT/commit" 2>/dev/null | tr '\n' ' ')" | tee -a "$OUT/env.txt"
fi
MODE=${1:-}
if [ "$MODE" = "--model-only" ]; then
  TARGETS="gpu_model_check"
fi

if [ -z "${PREBUILT:-}" ] && [ ! -f "$BUILD/build.ninja" ]; then
  if ! cmake -S . -B "$BUILD" -G Ninja -DTESSERA_GRPC=OFF -DTESSERA_CUDA=ON \
      -DCMAKE_BUILD_TYPE=Release >"$OUT/configure.log" 2>&1; then
    echo "full configure failed (see configure.log); using the standalone GPU project"
    tail -5 "$OUT/configure.log"
    rm -rf "$BUILD"
    cmake -S tests/gpu -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >>"$OUT/configure.log" 2>&1 \
      || { echo "FAIL configure"; tail -30 "$OUT/configure.log"; exit 1; }
  fi
fi
# The model check is built when the build defines it (model/ and its forward pass present).
if [ -n "${PREBUILT:-}" ]; then
  [ -x "$BUILD/gpu_model_check" ] && [ "$MODE" != "--model-only" ] && TARGETS="$TARGETS gpu_model_check"
elif ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q "^gpu_model_check:"; then
  [ "$MODE" = "--model-only" ] || TARGETS="$TARGETS gpu_model_check"
elif [ "$MODE" = "--model-only" ]; then
  echo "SKIP whole-model check: this build has no gpu_model_check"; exit 0
fi
if [ -z "${PREBUILT:-}" ] && ! ninja -C "$BUILD" -j"$JOBS" $TARGETS >"$OUT/build.log" 2>&1; then
  echo "FAIL build"; grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1
fi
bin() { find "$BUILD" -name "$1" -type f -perm -u+x | head -1; }

status=0
CHECKS="gpu_kernel_check gpu_attention_check gpu_sampling_check"
# Full builds (the engine linked) also check the sampler against the engine's host sampler.
[ -n "$(bin gpu_sampling_contract_check)" ] && CHECKS="$CHECKS gpu_sampling_contract_check"
[ "$MODE" = "--model-only" ] && CHECKS=""
for check in $CHECKS; do
  echo "== $check"
  "$(bin $check)" 2>&1 | tee "$OUT/$check.log" | grep -E "^(FAIL|SUMMARY)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
if [ -n "$(bin gpu_model_check)" ] && [ -f "$MODEL" ]; then
  echo "== gpu_model_check"
  "$(bin gpu_model_check)" "$MODEL" 2>&1 | tee "$OUT/gpu_model_check.log" \
    | grep -E "^(FAIL|PASS|SUMMARY)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "SKIP whole-model check (needs gpu_model_check and the default model)"
fi
if [ -n "$(bin tessera)" ] && [ -f "$MODEL" ]; then
  bash tests/gpu/engine_check.sh "$(dirname "$(bin tessera)")" "$MODEL" 2>&1 | tee "$OUT/engine_check.log" \
    | grep -E "^(FAIL|PASS|INFO|SUMMARY)"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "SKIP engine check (needs the tessera binary and the default model)"
fi
echo "GPU checks: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
if [ "$MODE" != "--checks-only" ] && [ "$MODE" != "--model-only" ]; then
  BUILD="$BUILD" OUT="$OUT" bash bench/run_gpu.sh "${@}"
fi
exit $status
