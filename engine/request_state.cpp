#include "engine/request_state.h"

#include <algorithm>

namespace tessera {
namespace {

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Text through the stop matcher; sets finish when a stop string completes.
void emit_through_stops(ChoiceState& c, const std::string& text, GenerationEvent& ev) {
  if (text.empty()) return;
  StopMatcher::Result r = c.stops.push(text);
  ev.text += r.emit;
  if (r.stopped) ev.finish = FinishReason::kStop;
}

}  // namespace

StopRules StopRules::make(const SamplingParams& params, const Tokenizer& tok, int model_eos_id,
                          int max_model_len) {
  StopRules r;
  if (!params.ignore_eos) {
    r.eos_ids = tok.stop_ids();
    if (tok.eos_id() >= 0 && !contains(r.eos_ids, tok.eos_id())) r.eos_ids.push_back(tok.eos_id());
    if (model_eos_id >= 0 && !contains(r.eos_ids, model_eos_id)) r.eos_ids.push_back(model_eos_id);
  }
  r.stop_token_ids = params.stop_token_ids;
  r.max_tokens = params.max_tokens;
  r.max_model_len = max_model_len;
  return r;
}

ChoiceState::ChoiceState(int index_, const Tokenizer& tok, const SamplingParams& params,
                         uint64_t seed_)
    : index(index_), seed(seed_), decoder(tok, params.skip_special_tokens), stops(params.stop) {}

GenerationEvent append_token(ChoiceState& c, int prompt_len, int32_t token,
                             std::optional<TokenLogprob> logprob, const StopRules& rules) {
  GenerationEvent ev;
  ev.index = c.index;
  ev.token_ids.push_back(token);
  if (logprob) ev.logprobs.push_back(std::move(*logprob));
  c.output.push_back(token);

  if (contains(rules.eos_ids, token) || contains(rules.stop_token_ids, token)) {
    ev.text = drain_pending_text(c);
    ev.finish = FinishReason::kStop;
    return ev;
  }
  emit_through_stops(c, c.decoder.push(token), ev);
  if (ev.finish) return ev;

  const int total = prompt_len + static_cast<int>(c.output.size());
  if (static_cast<int>(c.output.size()) >= rules.max_tokens ||
      (rules.max_model_len > 0 && total >= rules.max_model_len)) {
    emit_through_stops(c, c.decoder.flush(), ev);
    if (!ev.finish) {
      ev.text += c.stops.flush();
      ev.finish = FinishReason::kLength;
    }
  }
  return ev;
}

std::string drain_pending_text(ChoiceState& c) {
  GenerationEvent scratch;
  emit_through_stops(c, c.decoder.flush(), scratch);
  if (!scratch.finish) scratch.text += c.stops.flush();
  return scratch.text;
}

}  // namespace tessera
