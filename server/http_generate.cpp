// POST /v1/completions and /v1/chat/completions: validate, submit, and hand the running
// generation to the connection (http_session.cpp writes its JSON or SSE output).
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/tokenizer.h"
#include "server/http_generation.h"
#include "server/http_internal.h"

namespace tessera {

using json = nlohmann::json;

namespace {

std::vector<GenerationRequest> build_requests(const OpenAiRequest& r, const std::string& id) {
  std::vector<GenerationRequest> out;
  const auto now = Clock::now();
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    GenerationRequest g;
    g.id = r.prompts.size() == 1 ? id : id + "-" + std::to_string(p);
    g.prompt = r.prompts[p];
    g.sampling = r.sampling;
    g.priority = r.priority;
    g.arrival = now;
    if (r.timeout_ms) g.deadline = now + std::chrono::milliseconds(*r.timeout_ms);
    out.push_back(std::move(g));
  }
  return out;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

HandlerResult HttpServer::Impl::handle_generate(const HttpRequest& req, ApiKind kind) {
  if (stopping.load() || draining.load()) {
    throw ApiError(503, "service_unavailable",
                   stopping.load() ? "server is shutting down"
                                   : "server is draining; send new requests to another replica",
                   std::nullopt, "shutting_down");
  }
  check_json_content_type(req);
  json body = parse_json_body(req.body, options.max_json_depth);
  ParseContext pc = parse_context();
  OpenAiRequest r =
      kind == ApiKind::kChat ? parse_chat_request(body, pc) : parse_completion_request(body, pc);
  body = json();  // the parsed tree can be large; the request no longer needs it

  const char* prefix = kind == ApiKind::kChat ? "chatcmpl" : "cmpl";
  ResponseContext rc;
  rc.kind = kind;
  // Engine ids stay ours (unique); a client's X-Request-Id is echoed and logged beside it.
  rc.id = req.request_id_given ? new_request_id(prefix) : req.request_id;
  rc.created = unix_now();
  rc.model = r.model;
  rc.tokenizer = &engine.tokenizer();
  rc.want_logprobs = r.want_logprobs;

  auto group = std::make_shared<StreamGroup>(engine, build_requests(r, rc.id));
  if (req.request_id_given) spdlog::debug("request {}: engine id {}", req.request_id, rc.id);
  HandlerResult out;
  out.generation = std::make_shared<Generation>(std::move(group), std::move(rc), r.stream,
                                                r.include_usage, r.sampling.n);
  return out;
}

}  // namespace tessera
