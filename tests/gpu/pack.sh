#!/usr/bin/env bash
# Builds the GPU programs on this (GPU-less, Debian) machine and packs them for the H200
# image, which lacks CLI11, Boost and PCRE2 headers. One call to the device carries at
# most 64 MiB (the repo's tracked files, ~12 MB, included), so DEST (default .gpu/,
# git-ignored) gets four loads of at most 48 MB, one per call, made back to back (a machine
# stays warm ~30 s between calls):
#   b1/, b2/     the binaries and the .so files the image lacks (binlib.txz cut in two)
#   m1/, m2/     the default model cut in two (model.sha256 checks the joined file)
# On the device (T=/var/tmp/tg; LD_LIBRARY_PATH=$T/lib:/usr/local/cuda/lib64):
#   call 1 (carry .gpu/b1):  mkdir -p $T && cp .gpu/b1/part $T/b1
#   call 2 (carry .gpu/b2):  cat $T/b1 .gpu/b2/part | tar -C $T -xJf -
#   call 3 (carry .gpu/m1):  cp .gpu/m1/part $T/m1
#   call 4 (carry .gpu/m2, .gpu/model.sha256):  cat $T/m1 .gpu/m2/part >$T/model.gguf, then
#     PREBUILT=$T MODEL=$T/model.gguf bash tests/gpu/run.sh    (checks, model and engine)
# A run that needs no model file (kernel checks, dummy-weight benches) stops after call 2.
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
rm -rf "$DEST/b" "$DEST/b1" "$DEST/b2" "$DEST/m1" "$DEST/m2"
mkdir -p "$DEST/b1" "$DEST/b2" "$DEST/m1" "$DEST/m2"
tar -C "$DEST" -cf - bin lib commit | xz -T0 -6 >"$DEST/binlib.txz"
halve() {  # file, first part, second part: cut in two halves
  local half=$(( ($(stat -c %s "$1") + 1) / 2 ))
  head -c "$half" "$1" >"$2"
  tail -c +$((half + 1)) "$1" >"$3"
}
halve "$DEST/binlib.txz" "$DEST/b1/part" "$DEST/b2/part"
rm "$DEST/binlib.txz"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f $model ]; then
  halve $model "$DEST/m1/part" "$DEST/m2/part"
  sha256sum $model | cut -d' ' -f1 >"$DEST/model.sha256"
fi
du -sh "$DEST"/b1 "$DEST"/b2 "$DEST"/m1 "$DEST"/m2
