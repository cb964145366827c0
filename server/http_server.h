#pragma once
// The OpenAI-compatible HTTP frontend: /v1/completions, /v1/chat/completions (JSON or SSE),
// /v1/models, /tokenize, /detokenize, /health, /ready, /metrics.
//
// Event-driven (Boost.Beast over Boost.Asio): a few I/O threads serve every connection, and
// a connection holds no thread while it waits for the engine, so thousands of open streams
// or idle clients cost sockets and a little memory, never threads. Request bodies are parsed
// and tokenized on a small handler pool, off the I/O threads.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/openai_request.h"

namespace tessera {

class Engine;
namespace metrics {
class Registry;
}

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                   // 0: any free port (see HttpServer::port())
  std::string api_key;               // empty: no authentication
  size_t max_body_bytes = 4u << 20;  // larger bodies get 413, chunked or not
  int threads = 128;                 // handler threads (parse, tokenize), capped at the cores
  int stream_keepalive_ms = 1000;    // SSE comment when idle: detects gone clients early
  int health_stall_timeout_ms = 30000;

  // Hardening against slow or hostile clients. Each can be overridden from the environment
  // (TESSERA_HTTP_<NAME in capitals>, e.g. TESSERA_HTTP_HEADER_TIMEOUT_MS), see
  // apply_http_env_overrides.
  int io_threads = 2;                   // event-loop threads serving every connection
  int max_connections = 16384;          // beyond: 503 and close; capped by RLIMIT_NOFILE
  int header_timeout_ms = 10000;        // from connect / first byte to the end of the headers
  int body_timeout_ms = 30000;          // reading the whole body; also bounds a stuck write
  int keepalive_timeout_ms = 60000;     // an idle keep-alive connection is closed after this
  size_t max_header_bytes = 16u << 10;  // request line + headers; beyond: 431
  int max_json_depth = 64;              // nesting beyond: 400, before the tree is built
};

// Reads TESSERA_HTTP_IO_THREADS, _MAX_CONNECTIONS, _HEADER_TIMEOUT_MS, _BODY_TIMEOUT_MS,
// _KEEPALIVE_TIMEOUT_MS, _MAX_HEADER_BYTES, _MAX_JSON_DEPTH (positive integers; others are
// ignored with a warning). HttpServer applies it to the options it is given.
void apply_http_env_overrides(HttpOptions& options);

using ChatRenderer =
    std::function<std::string(const std::vector<ChatMessage>&, bool add_generation_prompt)>;

class HttpServer {
 public:
  HttpServer(Engine& engine, HttpOptions options, metrics::Registry& registry,
             ChatRenderer render_chat);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket (and raises RLIMIT_NOFILE to its hard limit); throws
  // Error(kInvalidArgument) when the address cannot be bound.
  void bind();
  int port() const;
  // Serves until stop() (from any thread, e.g. a signal watcher).
  void run();
  // From now on /ready answers 503 and new completions get 503 (so a load balancer moves
  // traffic away); /health stays 200 and requests in flight run to their end.
  void begin_drain();
  // Stops accepting, cancels what is still in flight (streams end with a finish chunk and
  // [DONE]; bounded, 5 s), closes every connection; run() then returns. Blocks until it has.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
