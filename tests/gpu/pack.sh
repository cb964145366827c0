#!/usr/bin/env bash
# Builds the GPU programs on this (GPU-less, Debian) machine and packs them for the H200
# image, which lacks CLI11, Boost and PCRE2 headers. One call to the device carries at
# most 64 MiB (the repo's tracked files, ~11 MB, included), so DEST (default .gpu/, git-ignored)
# gets two loads:
#   b/binlib.txz + m1/part00   the binaries, the .so files the image lacks, the model's first 45.5 MB
#   m2/part01                  the rest of the model (model.sha256 checks the joined file)
# On the device, first call (carry .gpu/b, .gpu/m1):
#   T=/var/tmp/tg; mkdir -p $T && tar -C $T -xJf .gpu/b/binlib.txz && cp .gpu/m1/part00 $T/
#   PREBUILT=$T LD_LIBRARY_PATH=$T/lib:/usr/local/cuda/lib64 bash tests/gpu/run.sh --checks-only
#   bash bench/run_gpu_engine.sh $T/bin/engine_bench          (same environment)
# second call, while the machine is still warm (carry .gpu/m2, .gpu/model.sha256):
#   cat $T/part00 .gpu/m2/part01 >$T/model.gguf
#   PREBUILT=$T MODEL=$T/model.gguf bash tests/gpu/run.sh --model-only   (model + engine checks)
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.gpu}
BUILD=${BUILD:-/tmp/build-gpu}
TARGETS="tessera engine_bench cuda_llama_bench cuda_attention_bench gpu_kernel_check gpu_quant_check
  gpu_attention_check gpu_sampling_check gpu_sampling_contract_check gpu_model_check
  gpu_deterministic_check"
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
  grep -E "libspdlog|libfmt|libpcre2" | xargs -r -I{} cp -L {} "$DEST/lib/"
git rev-parse HEAD >"$DEST/commit"
[ -n "$(git status --porcelain --untracked-files=no)" ] && echo "+dirty" >>"$DEST/commit"
rm -rf "$DEST/b" "$DEST/m1" "$DEST/m2"
mkdir -p "$DEST/b" "$DEST/m1" "$DEST/m2"
tar -C "$DEST" -cf - bin lib commit | xz -T0 -6 >"$DEST/b/binlib.txz"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f $model ]; then
  head -c 45500000 $model >"$DEST/m1/part00"
  tail -c +45500001 $model >"$DEST/m2/part01"
  sha256sum $model | cut -d' ' -f1 >"$DEST/model.sha256"
fi
du -sh "$DEST"/b "$DEST"/m1 "$DEST"/m2
