#pragma once
// Shared by the HTTP frontend's translation units; not a public header.
#include <httplib.h>

#include <atomic>
#include <string>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http_server.h"

namespace tessera {

struct HttpServer::Impl {
  Impl(Engine& e, HttpOptions o, metrics::Registry& r, ChatRenderer c);

  Engine& engine;
  HttpOptions options;
  metrics::Registry& registry;
  ChatRenderer render_chat;
  httplib::Server server;
  int bound_port = -1;
  Clock::time_point started = Clock::now();
  std::atomic<uint64_t> next_id{0};
  std::string id_salt;                 // per process, so ids from restarts do not collide
  std::atomic<bool> stopping{false};   // set by stop(): in-flight requests are cancelled
  std::atomic<bool> draining{false};   // set by begin_drain(): not ready, no new completions
  std::atomic<int> active_streams{0};  // SSE responses still being written

  ParseContext parse_context() const;
  std::string new_request_id(const char* prefix);

  // Route handlers (http_server.cpp / http_generate.cpp). Each may throw ApiError or Error;
  // the router turns those into OpenAI error bodies.
  void handle_generate(const httplib::Request& req, httplib::Response& res, ApiKind kind);
  void handle_models(httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
  void handle_health(httplib::Response& res);
  void handle_ready(httplib::Response& res);
  void handle_metrics(httplib::Response& res);
};

// Parses a request body; invalid JSON (including invalid UTF-8) is a 400 naming the position.
nlohmann::json parse_json_body(const httplib::Request& req);
void write_error(httplib::Response& res, const ApiError& e);

}  // namespace tessera
