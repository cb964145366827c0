#include "server/http_generation.h"

#include <algorithm>

namespace tessera {

using json = nlohmann::json;

namespace {

ApiError engine_failure(const std::string& message) {
  return ApiError(500, "server_error", message.empty() ? "generation failed" : message,
                  std::nullopt, "internal_error");
}

std::string sse(const json& j) {
  return "data: " + dump_json(j) + "\n\n";
}

}  // namespace

Generation::Generation(std::shared_ptr<StreamGroup> group, ResponseContext rc, bool stream,
                       bool include_usage, int n)
    : group_(std::move(group)),
      rc_(std::move(rc)),
      stream_(stream),
      include_usage_(include_usage),
      n_(n),
      text_offsets_(group_->num_choices(), 0),
      counted_(group_->num_choices(), 0),
      choices_(stream ? 0 : group_->num_choices()) {
  for (int len : group_->prompt_lengths()) usage_.prompt_tokens += len;
}

void Generation::on_event(int choice, const GenerationEvent& ev, std::string& out) {
  if (stream_) {
    counted_[choice] += static_cast<int>(ev.token_ids.size());
  } else {
    choices_[choice].add(ev);
    counted_[choice] = static_cast<int>(choices_[choice].token_ids.size());
  }
  if (ev.finish) {
    usage_.completion_tokens += std::max(ev.completion_tokens, counted_[choice]);
    if (choice % n_ == 0) usage_.cached_tokens += ev.cached_prompt_tokens;  // once per prompt
    usage_.spec_draft_tokens += ev.spec_draft_tokens;
    usage_.spec_accepted_tokens += ev.spec_accepted_tokens;
  }
  if (!stream_) return;
  if (ev.finish == FinishReason::kError) {
    out += sse(engine_failure(ev.error).to_json());
    return;
  }
  // Held-back text (a possible stop string) can leave an event with nothing to say.
  if (ev.text.empty() && !ev.finish && (!rc_.want_logprobs || ev.logprobs.empty())) return;
  out += sse(make_chunk(rc_, choice, ev, &text_offsets_[choice], include_usage_));
}

std::string Generation::drain() {
  std::string out;
  if (finished_) return out;
  if (stream_ && !opened_ && rc_.kind == ApiKind::kChat) {
    for (int c = 0; c < group_->num_choices(); ++c) {
      out += sse(make_role_chunk(rc_, c, include_usage_));
    }
  }
  opened_ = true;
  while (auto item = group_->poll()) on_event(item->choice, item->event, out);
  if (group_->done()) {
    finished_ = true;
    if (stream_) {
      if (include_usage_) out += sse(make_usage_chunk(rc_, usage_));
      out += "data: [DONE]\n\n";
    }
  }
  return out;
}

HttpReply Generation::reply() const {
  for (const auto& c : choices_) {
    if (c.finish == FinishReason::kError) return error_reply(engine_failure(c.error));
  }
  return json_reply(200, make_response(rc_, choices_, usage_));
}

}  // namespace tessera
