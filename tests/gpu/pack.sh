#!/usr/bin/env bash
# Builds the GPU programs on this (GPU-less, Debian) machine and packs them for the H200
# image, which lacks CLI11, cpp-httplib and PCRE2 headers: binaries plus the shared
# libraries that image does not have, into DEST (default .gpu/, git-ignored). The model file
# is split into PARTS pieces so that each fits one call's 64 MiB transfer.
#   bash tests/gpu/pack.sh [DEST]      then, there: PREBUILT=DEST bash tests/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.gpu}
BUILD=${BUILD:-/tmp/build-gpu}
TARGETS="tessera engine_bench cuda_llama_bench cuda_attention_bench gpu_kernel_check
  gpu_attention_check gpu_sampling_check gpu_model_check"
cmake -S . -B "$BUILD" -G Ninja -DTESSERA_GRPC=OFF -DTESSERA_CUDA=ON -DTESSERA_NATIVE=OFF \
  -DTESSERA_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD" -j"$(nproc)" $TARGETS
rm -rf "$DEST/bin" "$DEST/lib"
mkdir -p "$DEST/bin" "$DEST/lib"
for t in $TARGETS; do
  f=$(find "$BUILD" -name "$t" -type f -perm -u+x | head -1)
  strip -o "$DEST/bin/$t" "$f"
done
# Libraries of Debian's that Ubuntu 24.04 lacks or ships under another soname.
ldd "$DEST"/bin/* | awk '/=>/ {print $3}' | sort -u |
  grep -E "libspdlog|libfmt|libcpp-httplib|libbrotli|libpcre2" | xargs -r -I{} cp -L {} "$DEST/lib/"
git rev-parse HEAD >"$DEST/commit"
[ -n "$(git status --porcelain --untracked-files=no)" ] && echo "+dirty" >>"$DEST/commit"
if [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && [ ! -f "$DEST/model.sha256" ]; then
  mkdir -p "$DEST/m1" "$DEST/m2"
  split -n 2 -d models/SmolLM2-135M-Instruct.Q4_1.gguf "$DEST/part"
  mv "$DEST/part00" "$DEST/m1/"
  mv "$DEST/part01" "$DEST/m2/"
  sha256sum models/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1 >"$DEST/model.sha256"
fi
du -sh "$DEST"/*
