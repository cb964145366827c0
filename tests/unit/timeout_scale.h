#pragma once
#include <cstdlib>

namespace tessera::test {

// Sanitizer builds run 5-20x slower (scripts/sanitize.sh sets TESSERA_TEST_TIMEOUT_SCALE):
// waits and latency bounds scale with it, so slowness is not reported as a failure.
inline int timeout_scale() {
  const char* v = std::getenv("TESSERA_TEST_TIMEOUT_SCALE");
  return v != nullptr && std::atoi(v) > 1 ? std::atoi(v) : 1;
}

}  // namespace tessera::test
