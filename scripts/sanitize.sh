#!/usr/bin/env bash
# The unit suite and the end-to-end suite under sanitizers, CPU backend (run before each stop;
# too slow for CI's 2 cores). A report fails the run: the unit binary and the server stop at
# the first one (halt_on_error), and the e2e servers' stderr is searched for reports.
#   scripts/sanitize.sh address [pytest -k expression]   ASan + UBSan (build-asan-full)
#   scripts/sanitize.sh thread  [pytest -k expression]   TSan (build-tsan; gRPC off: Debian's
#                                                         gRPC is not built with TSan)
# The default e2e selection leaves out speculative decoding and beam search (long model runs,
# no threads of their own), and under TSan the gRPC tests (the server is built without gRPC);
# pass "" to run everything. The unit binary prints each test's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [pytest -k expression]}
case $kind in
  address) dir=build-asan-full; grpc=ON; select=${2-not speculative and not beam} ;;
  thread) dir=build-tsan; grpc=OFF; select=${2-not speculative and not beam and not grpc and not api_key} ;;
  *) echo "unknown sanitizer $kind" >&2; exit 2 ;;
esac
logs=${TMPDIR:-/tmp}/tessera-$kind-logs
rm -rf "$logs" && mkdir -p "$logs"

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE="$kind" \
  -DTESSERA_CUDA=OFF -DTESSERA_GRPC=$grpc -DTESSERA_NATIVE=OFF >/dev/null
cmake --build "$dir" --target tessera tessera_unit_tests

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan"
# The model runs 5-20x slower under a sanitizer: the tests' waits scale (engine_test_support.h).
export TESSERA_TEST_TIMEOUT_SCALE=${TESSERA_TEST_TIMEOUT_SCALE:-20}
status=0
echo "== unit tests under $kind sanitizer"
"$dir/tests/tessera_unit_tests" -d yes >"$logs/unit.txt" 2>&1 || status=1
tail -3 "$logs/unit.txt"

echo "== end-to-end tests under $kind sanitizer (-k '$select')"
TESSERA_BIN="$PWD/$dir/server/tessera" \
  python3 -m pytest -q tests/e2e ${select:+-k "$select"} 2>&1 | tail -15 || status=1
[ "${PIPESTATUS[0]}" = 0 ] || status=1

reports=$(ls "$logs" | grep -E '^(asan|ubsan|tsan)\.' || true)
if [ -n "$reports" ]; then
  echo "sanitizer reports:"
  for r in $reports; do head -30 "$logs/$r"; done
  status=1
fi
echo "SUMMARY $kind: $([ $status = 0 ] && echo PASS || echo FAIL) (logs in $logs)"
exit $status
