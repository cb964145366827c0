#include "server/http_server.h"

#include <sys/socket.h>

#include <csignal>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "engine/engine.h"
#include "model/tokenizer.h"
#include "server/http_internal.h"
#include "server/json_fields.h"
#include "server/openai_response.h"

namespace tessera {

using json = nlohmann::json;
namespace jf = json_fields;

namespace {

// Route label for metrics: known paths only, so odd URLs cannot explode label cardinality.
std::string route_label(const std::string& path) {
  static const char* kKnown[] = {"/v1/completions", "/v1/chat/completions",
                                 "/v1/models",      "/tokenize",
                                 "/detokenize",     "/health",
                                 "/ready",          "/metrics"};
  for (const char* k : kKnown) {
    if (path == k) return k;
  }
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  return "other";
}

// Probes and scrapes stay open without a key (Kubernetes and Prometheus do not send one).
bool needs_auth(const std::string& path) {
  return path != "/health" && path != "/ready" && path != "/metrics";
}

// Compares without an early exit, so response time does not reveal how much of a key matched.
bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

template <class F>
httplib::Server::Handler guarded(F f) {
  return [f](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const ApiError& e) {
      write_error(res, e);
    } catch (const Error& e) {
      write_error(res, api_error_from(e));
    } catch (const json::exception& e) {
      write_error(res,
                  ApiError(400, "invalid_request_error", e.what(), std::nullopt, "invalid_value"));
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", req.method, req.path, e.what());
      write_error(res, ApiError(500, "server_error", e.what(), std::nullopt, "internal_error"));
    }
  };
}

}  // namespace

nlohmann::json parse_json_body(const httplib::Request& req) {
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, "invalid_request_error",
                   std::string("request body is not valid JSON: ") + e.what(), std::nullopt,
                   "invalid_json");
  }
}

void write_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 429) res.set_header("Retry-After", "1");
  res.set_content(dump_json(e.to_json()), "application/json");
}

HttpServer::Impl::Impl(Engine& e, HttpOptions o, metrics::Registry& r, ChatRenderer c)
    : engine(e), options(std::move(o)), registry(r), render_chat(std::move(c)) {
  std::random_device rd;
  id_salt = fmt::format("{:08x}", rd());
}

ParseContext HttpServer::Impl::parse_context() const {
  ParseContext ctx;
  ctx.served_model = engine.model_name();
  ctx.tokenizer = &engine.tokenizer();
  ctx.max_model_len = engine.max_model_len();
  ctx.render_chat = render_chat;
  return ctx;
}

std::string HttpServer::Impl::new_request_id(const char* prefix) {
  return fmt::format("{}-{}{:06x}", prefix, id_salt, next_id.fetch_add(1));
}

void HttpServer::Impl::handle_models(httplib::Response& res) {
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  json model = {{"id", engine.model_name()},
                {"object", "model"},
                {"created", created},
                {"owned_by", "tessera"},
                {"max_model_len", engine.max_model_len()}};
  res.set_content(dump_json({{"object", "list"}, {"data", json::array({model})}}),
                  "application/json");
}

void HttpServer::Impl::handle_tokenize(const httplib::Request& req, httplib::Response& res) {
  json body = parse_json_body(req);
  jf::require_object(body, "request body");
  check_model(body, engine.model_name());
  const Tokenizer& tok = engine.tokenizer();
  std::vector<int32_t> ids;
  if (auto it = body.find("messages"); it != body.end() && !it->is_null()) {
    auto messages = parse_chat_messages(*it);
    bool add_gen = jf::get_bool(body, "add_generation_prompt").value_or(true);
    bool add_special = jf::get_bool(body, "add_special_tokens").value_or(false);
    ids = tok.encode(render_chat(messages, add_gen), add_special, true);
  } else {
    auto prompt = jf::get_string(body, "prompt");
    if (!prompt) throw invalid_param("prompt", "is required (a string), or give 'messages'");
    bool add_special = jf::get_bool(body, "add_special_tokens").value_or(true);
    ids = tok.encode(*prompt, add_special, true);
  }
  json out = {{"count", ids.size()}, {"max_model_len", engine.max_model_len()}, {"tokens", ids}};
  if (jf::get_bool(body, "return_token_strs").value_or(false)) {
    json strs = json::array();
    for (int32_t id : ids) strs.push_back(token_display(tok, id));
    out["token_strs"] = strs;
  }
  res.set_content(dump_json(out), "application/json");
}

void HttpServer::Impl::handle_detokenize(const httplib::Request& req, httplib::Response& res) {
  json body = parse_json_body(req);
  jf::require_object(body, "request body");
  check_model(body, engine.model_name());
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) {
    throw invalid_param("tokens", "is required (an array of token ids)");
  }
  std::vector<int32_t> ids = jf::to_token_ids(*it, "tokens");
  const int vocab = engine.tokenizer().vocab_size();
  for (int32_t id : ids) {
    if (id >= vocab) {
      throw invalid_param("tokens", "token id " + std::to_string(id) +
                                        " is outside the vocabulary [0, " + std::to_string(vocab) +
                                        ")");
    }
  }
  bool skip = jf::get_bool(body, "skip_special_tokens").value_or(false);
  res.set_content(dump_json({{"prompt", engine.tokenizer().decode(ids, skip)}}),
                  "application/json");
}

void HttpServer::Impl::handle_health(httplib::Response& res) {
  const EngineStats s = engine.stats();
  const EngineHealth h = engine_health(s, started, options.health_stall_timeout_ms);
  if (!h.ok) {
    res.status = 503;
    res.set_content(dump_json({{"status", h.status},
                               {"last_step_age_ms", h.last_step_age_ms},
                               {"stall_timeout_ms", options.health_stall_timeout_ms},
                               {"consecutive_failed_steps", s.consecutive_failed_steps}}),
                    "application/json");
    return;
  }
  res.set_content(dump_json({{"status", "ok"}, {"last_step_age_ms", h.last_step_age_ms}}),
                  "application/json");
}

void HttpServer::Impl::handle_ready(httplib::Response& res) {
  bool ready = engine.ready() && !draining.load();
  res.status = ready ? 200 : 503;
  res.set_content(dump_json({{"ready", ready}}), "application/json");
}

void HttpServer::Impl::handle_metrics(httplib::Response& res) {
  EngineStats s = engine.stats();
  auto last = s.last_step_end.time_since_epoch().count() != 0 ? s.last_step_end : started;
  registry
      .gauge("tessera:engine_last_step_age_seconds",
             "Seconds since the engine loop last finished a step (stall detector input).")
      .set(std::chrono::duration<double>(Clock::now() - last).count());
  res.set_content(registry.render(), "text/plain; version=0.0.4; charset=utf-8");
}

HttpServer::HttpServer(Engine& engine, HttpOptions options, metrics::Registry& registry,
                       ChatRenderer render_chat)
    : impl_(std::make_unique<Impl>(engine, std::move(options), registry, std::move(render_chat))) {
  Impl* self = impl_.get();
  httplib::Server& svr = self->server;
  const int threads = std::max(4, self->options.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(self->options.max_body_bytes);
  // httplib's default adds SO_REUSEPORT, which lets a second server bind the same port and
  // silently take half its connections; a busy port must be an error instead.
  svr.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  svr.set_pre_routing_handler([self](const httplib::Request& req, httplib::Response& res) {
    if (self->draining.load() && req.method == "POST" && req.path.starts_with("/v1/")) {
      write_error(res, ApiError(503, "service_unavailable", "server is shutting down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (self->options.api_key.empty() || !needs_auth(req.path)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string kBearer = "Bearer ";
    if (auth.starts_with(kBearer) &&
        constant_time_equal(auth.substr(kBearer.size()), self->options.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    write_error(res, ApiError(401, "invalid_request_error",
                              auth.empty() ? "Missing API key: send 'Authorization: Bearer <key>'"
                                           : "Incorrect API key provided",
                              std::nullopt, "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });

  // Errors httplib raises itself (unknown route, body too large, malformed HTTP) get the
  // same OpenAI-style body as ours; responses that already have a body are left alone.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 413) {
      write_error(res, ApiError(413, "invalid_request_error", "request body too large",
                                std::nullopt, "request_too_large"));
    } else if (res.status == 404) {
      write_error(
          res, ApiError(404, "invalid_request_error", "no route for " + req.method + " " + req.path,
                        std::nullopt, "not_found"));
    } else {
      write_error(res, ApiError(res.status, "invalid_request_error",
                                "bad request (HTTP status " + std::to_string(res.status) + ")"));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));

  auto& requests_total = registry;  // looked up per response: label values vary
  svr.set_logger([&requests_total](const httplib::Request& req, const httplib::Response& res) {
    requests_total
        .counter("tessera:http_requests_total", "HTTP requests by route and status code.",
                 {{"route", route_label(req.path)}, {"status", std::to_string(res.status)}})
        .inc();
  });

  svr.Post("/v1/completions", guarded([self](const auto& req, auto& res) {
             self->handle_generate(req, res, ApiKind::kCompletion);
           }));
  svr.Post("/v1/chat/completions", guarded([self](const auto& req, auto& res) {
             self->handle_generate(req, res, ApiKind::kChat);
           }));
  svr.Get("/v1/models", guarded([self](const auto&, auto& res) { self->handle_models(res); }));
  svr.Get(R"(/v1/models/(.+))", guarded([self](const httplib::Request& req, auto& res) {
            if (req.matches[1] != self->engine.model_name()) {
              throw ApiError(404, "invalid_request_error",
                             "The model '" + std::string(req.matches[1]) + "' does not exist",
                             "model", "model_not_found");
            }
            self->handle_models(res);
            json list = json::parse(res.body);
            res.set_content(dump_json(list["data"][0]), "application/json");
          }));
  svr.Post("/tokenize",
           guarded([self](const auto& req, auto& res) { self->handle_tokenize(req, res); }));
  svr.Post("/detokenize",
           guarded([self](const auto& req, auto& res) { self->handle_detokenize(req, res); }));
  svr.Get("/health", guarded([self](const auto&, auto& res) { self->handle_health(res); }));
  svr.Get("/ready", guarded([self](const auto&, auto& res) { self->handle_ready(res); }));
  svr.Get("/metrics", guarded([self](const auto&, auto& res) { self->handle_metrics(res); }));
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::bind() {
  // A client that disconnects mid-stream makes send() raise SIGPIPE; we want the EPIPE error
  // instead, which cancels that request.
  std::signal(SIGPIPE, SIG_IGN);
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.bound_port = s.server.bind_to_any_port(s.options.host);
  } else if (s.server.bind_to_port(s.options.host, s.options.port)) {
    s.bound_port = s.options.port;
  }
  if (s.bound_port <= 0) {
    throw Error(ErrorKind::kInvalidArgument, "cannot bind HTTP server to " + s.options.host + ":" +
                                                 std::to_string(s.options.port));
  }
}

int HttpServer::port() const {
  return impl_->bound_port;
}

void HttpServer::run() {
  impl_->server.listen_after_bind();
}

void HttpServer::begin_drain() {
  impl_->draining.store(true);
}

void HttpServer::stop() {
  impl_->stopping.store(true);
  // Streams see `stopping`, cancel their requests and end with a finish chunk and [DONE];
  // httplib's stop() would cut them mid-chunk, so it waits for them (bounded).
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (impl_->active_streams.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (impl_->server.is_running()) impl_->server.stop();
}

}  // namespace tessera
