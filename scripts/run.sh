#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and starts the server on the default model:
# SmolLM2-135M-Instruct on the GPU when one exists, else on the CPU; 127.0.0.1:8000.
# Extra arguments go to `tessera serve` (see `build/server/tessera serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${TESSERA_BUILD_DIR:-build}/server/tessera" serve "$@"
