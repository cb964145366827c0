#pragma once
// Shared by the HTTP frontend's translation units; not a public header.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http_server.h"

namespace tessera {

namespace net = boost::asio;

class Generation;
class HttpSession;

// One parsed request, as the route handlers see it.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query string
  std::string body;
  std::string content_type;
  std::string authorization;
  std::string request_id;         // the client's X-Request-Id, or one we generated
  bool request_id_given = false;  // true: the client sent it
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// What a route returns: a whole reply, or a generation whose output is still to come.
struct HandlerResult {
  HttpReply reply;
  std::shared_ptr<Generation> generation;
};

struct HttpServer::Impl {
  Impl(Engine& e, HttpOptions o, metrics::Registry& r, ChatRenderer c);
  ~Impl();

  Engine& engine;
  HttpOptions options;
  metrics::Registry& registry;
  ChatRenderer render_chat;

  int bound_port = -1;
  int max_connections = 0;  // options.max_connections capped by RLIMIT_NOFILE
  Clock::time_point started = Clock::now();
  std::atomic<uint64_t> next_id{0};
  std::string id_salt;  // per process, so ids from restarts do not collide
  std::atomic<bool> draining{false};
  std::atomic<bool> stopping{false};
  std::atomic<int> open_connections{0};
  std::atomic<int> busy_connections{0};  // a request read and not yet fully answered
  std::atomic<int> active_streams{0};    // SSE responses being written

  std::mutex sessions_mu;
  std::unordered_map<uint64_t, std::weak_ptr<HttpSession>> sessions;
  uint64_t next_session = 0;

  std::mutex run_mu;
  std::condition_variable run_cv;
  bool running = false;

  // Declared after everything a session touches: destroying the loop destroys the handlers
  // still queued on it, and with them the last references to their sessions.
  net::io_context ioc;
  net::ip::tcp::acceptor acceptor;
  net::steady_timer accept_retry;              // after EMFILE: wait, then accept again
  std::unique_ptr<net::thread_pool> handlers;  // body parsing, tokenizing, submit

  ParseContext parse_context() const;
  std::string new_request_id(const char* prefix);

  // http_listener.cpp
  void start_accept();
  void shutdown_sequence();
  void add_session(const std::shared_ptr<HttpSession>& s);
  void remove_session(uint64_t id);
  std::vector<std::shared_ptr<HttpSession>> live_sessions();

  // http_routes.cpp. handle() never throws: every error becomes an OpenAI error reply.
  // GET routes are cheap and run on the I/O thread; the others on the handler pool.
  static bool runs_inline(const HttpRequest& req) { return req.method == "GET"; }
  HandlerResult handle(const HttpRequest& req);
  void count_response(const std::string& path, int status);
  HttpReply handle_models(const std::string* id);
  HttpReply handle_tokenize(const HttpRequest& req);
  HttpReply handle_detokenize(const HttpRequest& req);
  HttpReply handle_health();
  HttpReply handle_ready();
  HttpReply handle_metrics();
  // http_generate.cpp
  HandlerResult handle_generate(const HttpRequest& req, ApiKind kind);
};

// http_body.cpp. Request bodies: 400 unless the Content-Type is JSON (or absent); bodies
// that are not JSON, nest deeper than `max_depth` or hold too many containers are 400 with
// a message of ours (the byte offset, never the JSON library's text).
void check_json_content_type(const HttpRequest& req);
nlohmann::json parse_json_body(const std::string& body, int max_depth);

HttpReply json_reply(int status, const nlohmann::json& body);
HttpReply error_reply(const ApiError& e);
// Route label for metrics: known paths only, so odd URLs cannot explode label cardinality.
std::string route_label(const std::string& path);

}  // namespace tessera
