#pragma once
// The OpenAI-compatible HTTP frontend (cpp-httplib): /v1/completions, /v1/chat/completions
// (JSON or SSE), /v1/models, /tokenize, /detokenize, /health, /ready, /metrics.
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
  size_t max_body_bytes = 4u << 20;  // larger bodies get 413
  int threads = 128;                 // one per open connection (streams hold theirs)
  int stream_keepalive_ms = 1000;    // SSE comment when idle: detects gone clients early
  int health_stall_timeout_ms = 30000;
};

using ChatRenderer =
    std::function<std::string(const std::vector<ChatMessage>&, bool add_generation_prompt)>;

class HttpServer {
 public:
  HttpServer(Engine& engine, HttpOptions options, metrics::Registry& registry,
             ChatRenderer render_chat);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; throws Error(kInvalidArgument) when the address cannot be bound.
  void bind();
  int port() const;
  // Serves until stop() (from any thread, e.g. a signal watcher).
  void run();
  // Graceful shutdown, first half: /ready answers 503 and new completions 503 while
  // requests already running continue. stop() ends the rest.
  void begin_drain();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
