// Routing, auth and the small routes: /v1/models, /tokenize, /detokenize, /health, /ready,
// /metrics. Completions are in http_generate.cpp.
#include <cctype>
#include <new>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/metrics.h"
#include "model/tokenizer.h"
#include "server/http_internal.h"
#include "server/json_fields.h"
#include "server/openai_response.h"

namespace tessera {

using json = nlohmann::json;
namespace jf = json_fields;

namespace {

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

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

ApiError not_found(const HttpRequest& req) {
  return ApiError(404, "invalid_request_error", "no route for " + req.method + " " + req.path,
                  std::nullopt, "not_found");
}

ApiError wrong_method(const HttpRequest& req, const char* allowed) {
  return ApiError(405, "invalid_request_error",
                  req.method + " is not allowed on " + req.path + " (use " + allowed + ")",
                  std::nullopt, "method_not_allowed");
}

HandlerResult route(HttpServer::Impl& s, const HttpRequest& req) {
  const std::string& p = req.path;
  const bool get = req.method == "GET";
  const bool post = req.method == "POST";
  auto only = [&](bool ok, const char* allowed) {
    if (!ok) throw wrong_method(req, allowed);
  };
  if (p == "/v1/completions" || p == "/v1/chat/completions") {
    only(post, "POST");
    return s.handle_generate(req, p == "/v1/completions" ? ApiKind::kCompletion : ApiKind::kChat);
  }
  HandlerResult r;
  if (p == "/health") {
    only(get, "GET");
    r.reply = s.handle_health();
  } else if (p == "/ready") {
    only(get, "GET");
    r.reply = s.handle_ready();
  } else if (p == "/metrics") {
    only(get, "GET");
    r.reply = s.handle_metrics();
  } else if (p == "/v1/models") {
    only(get, "GET");
    r.reply = s.handle_models(nullptr);
  } else if (p.starts_with("/v1/models/") && p.size() > 11) {
    only(get, "GET");
    const std::string id = percent_decode(p.substr(11));
    r.reply = s.handle_models(&id);
  } else if (p == "/tokenize") {
    only(post, "POST");
    r.reply = s.handle_tokenize(req);
  } else if (p == "/detokenize") {
    only(post, "POST");
    r.reply = s.handle_detokenize(req);
  } else {
    throw not_found(req);
  }
  return r;
}

}  // namespace

HandlerResult HttpServer::Impl::handle(const HttpRequest& req) {
  HandlerResult r;
  try {
    if (!options.api_key.empty() && needs_auth(req.path)) {
      const std::string kBearer = "Bearer ";
      const std::string& auth = req.authorization;
      if (!auth.starts_with(kBearer) ||
          !constant_time_equal(auth.substr(kBearer.size()), options.api_key)) {
        throw ApiError(401, "invalid_request_error",
                       auth.empty() ? "Missing API key: send 'Authorization: Bearer <key>'"
                                    : "Incorrect API key provided",
                       std::nullopt, "invalid_api_key");
      }
    }
    return route(*this, req);
  } catch (const ApiError& e) {
    r.reply = error_reply(e);
  } catch (const Error& e) {
    r.reply = error_reply(api_error_from(e));
  } catch (const json::exception& e) {
    // A typed read we did not guard; the library's text names its internals, not the field.
    spdlog::warn("request {}: {} {}: {}", req.request_id, req.method, req.path, e.what());
    r.reply = error_reply(ApiError(400, "invalid_request_error",
                                   "a field of the request body has the wrong type", std::nullopt,
                                   "invalid_value"));
  } catch (const std::bad_alloc&) {
    spdlog::error("request {}: {} {}: out of memory", req.request_id, req.method, req.path);
    r.reply =
        error_reply(ApiError(503, "service_unavailable", "the server is out of memory; retry later",
                             std::nullopt, "out_of_memory"));
  } catch (const std::exception& e) {
    spdlog::error("request {}: {} {}: {}", req.request_id, req.method, req.path, e.what());
    r.reply = error_reply(
        ApiError(500, "server_error", "internal server error", std::nullopt, "internal_error"));
  }
  return r;
}

void HttpServer::Impl::count_response(const std::string& path, int status) {
  registry
      .counter("tessera:http_requests_total", "HTTP requests by route and status code.",
               {{"route", route_label(path)}, {"status", std::to_string(status)}})
      .inc();
}

HttpReply HttpServer::Impl::handle_models(const std::string* id) {
  if (id && *id != engine.model_name()) {
    throw ApiError(404, "invalid_request_error", "The model '" + *id + "' does not exist", "model",
                   "model_not_found");
  }
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  json model = {{"id", engine.model_name()},
                {"object", "model"},
                {"created", created},
                {"owned_by", "tessera"},
                {"max_model_len", engine.max_model_len()}};
  if (id) return json_reply(200, model);
  return json_reply(200, {{"object", "list"}, {"data", json::array({model})}});
}

HttpReply HttpServer::Impl::handle_tokenize(const HttpRequest& req) {
  check_json_content_type(req);
  json body = parse_json_body(req.body, options.max_json_depth);
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
  return json_reply(200, out);
}

HttpReply HttpServer::Impl::handle_detokenize(const HttpRequest& req) {
  check_json_content_type(req);
  json body = parse_json_body(req.body, options.max_json_depth);
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
  return json_reply(200, {{"prompt", engine.tokenizer().decode(ids, skip)}});
}

HttpReply HttpServer::Impl::handle_health() {
  const EngineStats s = engine.stats();
  // Stalled (no step or idle tick for the timeout) or failing (steps keep throwing).
  const EngineHealth h = engine_health(s, started, options.health_stall_timeout_ms);
  if (!h.ok) {
    return json_reply(503, {{"status", h.status},
                            {"last_step_age_ms", h.last_step_age_ms},
                            {"stall_timeout_ms", options.health_stall_timeout_ms},
                            {"consecutive_failed_steps", s.consecutive_failed_steps}});
  }
  return json_reply(200, {{"status", draining.load() ? "draining" : "ok"},
                          {"last_step_age_ms", h.last_step_age_ms}});
}

HttpReply HttpServer::Impl::handle_ready() {
  // Draining: still alive (/health), but no longer a target for new work.
  if (draining.load() || stopping.load()) {
    return json_reply(503, {{"ready", false}, {"draining", true}});
  }
  bool ready = engine.ready();
  return json_reply(ready ? 200 : 503, {{"ready", ready}});
}

HttpReply HttpServer::Impl::handle_metrics() {
  EngineStats s = engine.stats();
  auto last = s.last_step_end.time_since_epoch().count() != 0 ? s.last_step_end : started;
  registry
      .gauge("tessera:engine_last_step_age_seconds",
             "Seconds since the engine loop last finished a step (stall detector input).")
      .set(std::chrono::duration<double>(Clock::now() - last).count());
  registry.gauge("tessera:http_open_connections", "Open HTTP connections.")
      .set(open_connections.load());
  registry.gauge("tessera:http_active_streams", "SSE responses being streamed.")
      .set(active_streams.load());
  HttpReply r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = registry.render();
  return r;
}

}  // namespace tessera
