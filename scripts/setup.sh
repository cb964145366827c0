#!/usr/bin/env bash
# Sets up a fresh Debian machine for Tessera: Debian and PyPI packages, the build, and the
# default model. Idempotent and quick when everything is already there.
#   scripts/setup.sh            # everything
#   TESSERA_BUILD_DIR=dir       # build folder (default: build)
#   TESSERA_CMAKE_ARGS="..."    # extra CMake arguments (e.g. -DTESSERA_CUDA=OFF)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly deb_packages=(
  build-essential cmake ninja-build pkg-config ccache unzip git
  nlohmann-json3-dev libspdlog-dev libfmt-dev catch2 libcli11-dev libboost-dev
  libpcre2-dev libssl-dev zlib1g-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  prometheus
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${deb_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -r scripts/requirements-test.txt

scripts/fetch_model.sh
# The same weights as a Hugging Face folder, so both loaders are tested on them.
if [ ! -f models/smollm2-hf/model.safetensors ]; then
  python3 scripts/convert_gguf_to_hf.py --out models/smollm2-hf
fi
# The HF tokenizers reference built from the GGUF vocabulary (tests/unit/test_tokenizer_golden.cpp).
if [ ! -f models/smollm2-reference-tokenizer.json ]; then
  python3 scripts/make_tokenizer_golden.py --reference-only
fi

build_dir=${TESSERA_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${TESSERA_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir"
echo "setup: done (binary: $build_dir/server/tessera)"
