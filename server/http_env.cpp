// Environment overrides of the HTTP hardening options: operators (and tests that need a
// short timeout) can set them without a config key.
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "server/http_server.h"

namespace tessera {

namespace {

template <class T>
void read_env(const char* name, T& target) {
  const char* v = std::getenv(name);
  if (!v || !*v) return;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < 1 || x > (1ll << 40)) {
    spdlog::warn("ignoring {}={}: not a positive integer", name, v);
    return;
  }
  target = static_cast<T>(x);
}

}  // namespace

void apply_http_env_overrides(HttpOptions& o) {
  read_env("TESSERA_HTTP_IO_THREADS", o.io_threads);
  read_env("TESSERA_HTTP_MAX_CONNECTIONS", o.max_connections);
  read_env("TESSERA_HTTP_HEADER_TIMEOUT_MS", o.header_timeout_ms);
  read_env("TESSERA_HTTP_BODY_TIMEOUT_MS", o.body_timeout_ms);
  read_env("TESSERA_HTTP_KEEPALIVE_TIMEOUT_MS", o.keepalive_timeout_ms);
  read_env("TESSERA_HTTP_MAX_HEADER_BYTES", o.max_header_bytes);
  read_env("TESSERA_HTTP_MAX_JSON_DEPTH", o.max_json_depth);
}

}  // namespace tessera
