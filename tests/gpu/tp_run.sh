#!/usr/bin/env bash
# Tensor-parallel checks on a 2-GPU H200 machine (the device tool's nvidia-h200-x2):
#   1. gpu_tp_check: TP=2 vs TP=1 logits on the Llama-3.1-8B shape (4 layers, same dummy
#      weights), then decode time per token TP=1 vs TP=2 (DEPTH layers, default 32);
#   2. the same logits check with NCCL forced onto its network transport
#      (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1), the stand-in for two nodes;
#   3. with PREBUILT_TESSERA=path: `tessera serve --tensor-parallel-size 2` on a dummy model,
#      completions, then a worker killed mid-run (/health must turn 503, requests end).
# Needs model/ in the standalone GPU build: DEBS=dir of Debian .debs for PCRE2 and
# nlohmann-json (the image lacks them). NCCL comes from the image's nvidia-nccl wheel.
# Logs under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
OUT=${OUT:-/var/tmp/tessera-gpu-out}
BUILD=${BUILD:-/var/tmp/build-gpu}
DEPTH=${DEPTH:-32}
mkdir -p "$OUT"
source tests/gpu/device_env.sh
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S tests/gpu -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/tp_configure.log" 2>&1 \
    || { echo "FAIL configure"; tail -30 "$OUT/tp_configure.log"; exit 1; }
fi
ninja -C "$BUILD" -j"$(nproc)" gpu_tp_check >"$OUT/tp_build.log" 2>&1 \
  || { echo "FAIL build"; grep -E "error|FAILED" "$OUT/tp_build.log" | head -30; exit 1; }
bin=$(find "$BUILD" -name gpu_tp_check -type f | head -1)
status=0
echo "== TP=2 vs TP=1, 8B shape, 4 layers"
timeout 300 "$bin" configs/models/llama-3.1-8b.json 4 2>&1 | tee "$OUT/tp_check_4.log" | grep -E "PASS|FAIL|TP="
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "== network transport (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1)"
NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 timeout 300 "$bin" configs/models/llama-3.1-8b.json 4 2>&1 \
  | tee "$OUT/tp_check_net.log" | grep -E "PASS|FAIL|TP="
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ -n "${DEPTH_RUN:-1}" ]; then
  echo "== decode timing, $DEPTH layers"
  timeout 400 "$bin" configs/models/llama-3.1-8b.json "$DEPTH" 2>&1 | tee "$OUT/tp_check_full.log" \
    | grep -E "PASS|FAIL|TP="
fi
exit $status
