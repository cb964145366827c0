#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test: unit tests (ctest), the GGUF fuzzer under
# ASan/UBSan, and the end-to-end suite against the real server with real clients (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

build_dir=${TESSERA_BUILD_DIR:-build}
echo "== unit tests"
ctest --test-dir "$build_dir" --output-on-failure

if [ -f tests/fuzz/gguf_fuzz.cpp ]; then
  echo "== GGUF parser fuzzing (ASan + UBSan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON \
    -DTESSERA_CUDA=OFF -DTESSERA_GRPC=OFF >/dev/null
  cmake --build build-asan --target gguf_fuzz
  build-asan/tests/gguf_fuzz --iterations 100000 models/SmolLM2-135M-Instruct.Q4_1.gguf
fi

echo "== deployment files (Kubernetes schemas, compose)"; TESSERA_BIN="$PWD/$build_dir/server/tessera" python3 -m pytest -q tests/deploy

echo "== end-to-end tests"
TESSERA_BIN="$PWD/$build_dir/server/tessera" python3 -m pytest -q tests/e2e
