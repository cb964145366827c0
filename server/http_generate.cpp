// POST /v1/completions and /v1/chat/completions: whole JSON responses and SSE streams.
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/tokenizer.h"
#include "server/http_internal.h"
#include "server/openai_response.h"
#include "server/stream_group.h"

namespace tessera {

using json = nlohmann::json;

namespace {

constexpr auto kPollSlice = std::chrono::milliseconds(100);

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

// Usage over all prompts and choices; filled from each choice's final event.
struct UsageTracker {
  Usage usage;
  int n = 1;
  explicit UsageTracker(const StreamGroup& g, int n_) : n(n_) {
    for (int len : g.prompt_lengths()) usage.prompt_tokens += len;
  }
  void on_final(int choice, const GenerationEvent& ev, int counted_tokens) {
    usage.completion_tokens += std::max(ev.completion_tokens, counted_tokens);
    if (choice % n == 0) usage.cached_tokens += ev.cached_prompt_tokens;  // once per prompt
  }
};

json error_payload(const std::string& message) {
  return ApiError(500, "server_error", message.empty() ? "generation failed" : message,
                  std::nullopt, "internal_error")
      .to_json();
}

// State of one SSE response, shared by httplib's content-provider calls.
struct SseState {
  std::shared_ptr<StreamGroup> group;
  ResponseContext rc;
  bool include_usage = false;
  UsageTracker usage;
  std::vector<int> text_offsets;
  std::vector<int> counted;
  bool opened = false;
  Clock::time_point last_write = Clock::now();
  std::chrono::milliseconds keepalive;
  const std::atomic<bool>* stopping = nullptr;

  SseState(std::shared_ptr<StreamGroup> g, ResponseContext r, bool usage_on, int n,
           std::chrono::milliseconds ka, const std::atomic<bool>* stop)
      : group(std::move(g)),
        rc(std::move(r)),
        include_usage(usage_on),
        usage(*group, n),
        text_offsets(group->num_choices(), 0),
        counted(group->num_choices(), 0),
        keepalive(ka),
        stopping(stop) {}
};

bool sse_write(SseState& st, httplib::DataSink& sink, const std::string& payload) {
  if (!sink.write(payload.data(), payload.size())) return false;
  st.last_write = Clock::now();
  return true;
}

bool sse_data(SseState& st, httplib::DataSink& sink, const json& j) {
  return sse_write(st, sink, "data: " + dump_json(j) + "\n\n");
}

// One content-provider call: write what the engine produced (or a keep-alive comment).
// Returning false aborts the response; the releaser then cancels the request.
bool sse_step(SseState& st, httplib::DataSink& sink) {
  if (!st.opened) {
    st.opened = true;
    if (st.rc.kind == ApiKind::kChat) {
      for (int c = 0; c < st.group->num_choices(); ++c) {
        if (!sse_data(st, sink, make_role_chunk(st.rc, c, st.include_usage))) return false;
      }
    }
  }
  if (st.stopping && st.stopping->load()) st.group->cancel();
  auto item = st.group->next(kPollSlice);
  if (item) {
    const GenerationEvent& ev = item->event;
    st.counted[item->choice] += int(ev.token_ids.size());
    if (ev.finish) st.usage.on_final(item->choice, ev, st.counted[item->choice]);
    if (ev.finish == FinishReason::kError) return sse_data(st, sink, error_payload(ev.error));
    // Held-back text (a possible stop string) can leave an event with nothing to say.
    bool empty = ev.text.empty() && !ev.finish && (!st.rc.want_logprobs || ev.logprobs.empty());
    if (empty) return true;
    return sse_data(
        st, sink,
        make_chunk(st.rc, item->choice, ev, &st.text_offsets[item->choice], st.include_usage));
  }
  if (st.group->done()) {
    if (st.include_usage && !sse_data(st, sink, make_usage_chunk(st.rc, st.usage.usage))) {
      return false;
    }
    if (!sse_write(st, sink, "data: [DONE]\n\n")) return false;
    sink.done();
    return true;
  }
  // Idle (queued, or a long prefill): an SSE comment both keeps proxies from timing out and
  // probes the socket, so a client that left is noticed even before its first token.
  if (Clock::now() - st.last_write >= st.keepalive) return sse_write(st, sink, ": keep-alive\n\n");
  return true;
}

}  // namespace

void HttpServer::Impl::handle_generate(const httplib::Request& req, httplib::Response& res,
                                       ApiKind kind) {
  if (stopping.load()) {
    throw ApiError(503, "service_unavailable", "server is shutting down", std::nullopt,
                   "shutting_down");
  }
  json body = parse_json_body(req);
  ParseContext pc = parse_context();
  OpenAiRequest r =
      kind == ApiKind::kChat ? parse_chat_request(body, pc) : parse_completion_request(body, pc);

  ResponseContext rc;
  rc.kind = kind;
  rc.id = new_request_id(kind == ApiKind::kChat ? "chatcmpl" : "cmpl");
  rc.created = unix_now();
  rc.model = r.model;
  rc.tokenizer = &engine.tokenizer();
  rc.want_logprobs = r.want_logprobs;

  auto group = std::make_shared<StreamGroup>(engine, build_requests(r, rc.id));

  if (r.stream) {
    auto st = std::make_shared<SseState>(group, rc, r.include_usage, r.sampling.n,
                                         std::chrono::milliseconds(options.stream_keepalive_ms),
                                         &stopping);
    ++active_streams;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Request-Id", rc.id);
    res.set_chunked_content_provider(
        "text/event-stream", [st](size_t, httplib::DataSink& sink) { return sse_step(*st, sink); },
        [st, this](bool) {
          // Runs when the response ends, finished or not: a client that went away cancels.
          if (!st->group->done()) {
            spdlog::info("request {}: client disconnected, cancelling", st->rc.id);
            st->group->cancel();
          }
          --active_streams;
        });
    return;
  }

  std::vector<ChoiceOutput> choices(group->num_choices());
  UsageTracker usage(*group, r.sampling.n);
  while (!group->done()) {
    if (stopping.load()) group->cancel();
    auto item = group->next(kPollSlice);
    if (!item) continue;
    ChoiceOutput& c = choices[item->choice];
    c.add(item->event);
    if (item->event.finish) usage.on_final(item->choice, item->event, int(c.token_ids.size()));
  }
  for (const auto& c : choices) {
    if (c.finish == FinishReason::kError) {
      throw ApiError(500, "server_error", c.error.empty() ? "generation failed" : c.error,
                     std::nullopt, "internal_error");
    }
  }
  res.set_header("X-Request-Id", rc.id);
  res.set_content(dump_json(make_response(rc, choices, usage.usage)), "application/json");
}

}  // namespace tessera
