#!/usr/bin/env bash
# Builds the thread-pool tests under ThreadSanitizer and runs them with millions of jobs on an
# oversubscribed machine (pool threads = 3x cores, plus one spinning thread per core).
#   tests/stress/thread_pool_tsan.sh [jobs]     # default 2,000,000
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/tessera-pool-tsan
mkdir -p "$out"
g++ -std=c++20 -O1 -g -fsanitize=thread -I. \
  kernels/cpu/thread_pool.cpp tests/unit/test_thread_pool.cpp tests/unit/main.cpp \
  -o "$out/pool_tsan" -pthread
TESSERA_POOL_STRESS_JOBS=${1:-2000000} TSAN_OPTIONS=halt_on_error=1 \
  timeout 1800 "$out/pool_tsan" --durations yes
