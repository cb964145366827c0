#include "engine/request_validation.h"

#include <cmath>
#include <string>

#include "common/error.h"
#include "engine/sampler.h"

namespace tessera {
namespace {

void require(bool ok, const std::string& field, const std::string& rule) {
  if (!ok) throw Error(ErrorKind::kInvalidArgument, field + " " + rule);
}

std::string str(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// vLLM's rules for the beam search fields; beam search scores by the raw log-softmax, so the
// sampling knobs that would change the distribution are refused rather than ignored
// (temperature and seed do not change the beams and are ignored).
void validate_beam_search(const SamplingParams& s, int max_num_seqs) {
  if (!s.use_beam_search) {
    require(s.best_of == 0 || s.best_of == s.n, "best_of",
            "must equal n without use_beam_search (best-of sampling is not supported)");
    require(s.length_penalty == 1.0f, "length_penalty", "only applies with use_beam_search");
    require(s.early_stopping == EarlyStopping::kHeuristic, "early_stopping",
            "only applies with use_beam_search");
    return;
  }
  const int width = s.beam_width();
  require(s.best_of >= 0 && width >= s.n, "best_of",
          "must be >= n (" + std::to_string(s.n) + ") with use_beam_search, got " +
              std::to_string(s.best_of));
  if (max_num_seqs > 0)
    require(width <= max_num_seqs, "best_of",
            "beam width " + std::to_string(width) + " exceeds the server's max_num_seqs " +
                std::to_string(max_num_seqs));
  require(std::isfinite(s.length_penalty), "length_penalty",
          "must be a finite number, got " + str(s.length_penalty));
  require(s.top_p == 1.0f, "top_p", "must be 1 with use_beam_search");
  require(s.top_k <= 0, "top_k", "must be off with use_beam_search");
  require(s.min_p == 0.0f, "min_p", "must be 0 with use_beam_search");
  require(s.repetition_penalty == 1.0f, "repetition_penalty", "must be 1 with use_beam_search");
  require(s.presence_penalty == 0.0f && s.frequency_penalty == 0.0f, "presence_penalty",
          "and frequency_penalty must be 0 with use_beam_search");
  require(s.stop.empty(), "stop",
          "strings are not supported with use_beam_search (stop_token_ids are)");
  require(s.logprobs <= 0, "logprobs",
          "must be 0 with use_beam_search (the chosen tokens' logprobs, no alternatives)");
}

}  // namespace

void validate_request(const GenerationRequest& r, const RequestLimits& lim) {
  const SamplingParams& s = r.sampling;
  const int prompt_len = static_cast<int>(r.prompt.size());
  require(prompt_len > 0, "prompt", "must contain at least one token");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    require(r.prompt[i] >= 0 && r.prompt[i] < lim.vocab_size, "prompt",
            "token " + std::to_string(r.prompt[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(lim.vocab_size) + ")");
  }
  require(s.max_tokens >= 1, "max_tokens", "must be >= 1, got " + std::to_string(s.max_tokens));
  if (lim.max_model_len > 0) {
    require(prompt_len + static_cast<int64_t>(s.max_tokens) <= lim.max_model_len, "max_tokens",
            "too large: this model's maximum context length is " +
                std::to_string(lim.max_model_len) + " tokens, but " + std::to_string(prompt_len) +
                " prompt tokens + " + std::to_string(s.max_tokens) + " max_tokens were requested");
  }
  // n may exceed max_num_seqs: the choices that do not fit wait for a slot (Scheduler::fork).
  constexpr int kMaxChoices = 1024;
  require(s.n >= 1 && s.n <= kMaxChoices, "n",
          "must be in [1, " + std::to_string(kMaxChoices) + "], got " + std::to_string(s.n));
  require(std::isfinite(s.temperature) && s.temperature >= 0.0f, "temperature",
          "must be >= 0, got " + str(s.temperature));
  require(s.top_k >= -1, "top_k", "must be >= 0 (0 or -1 = off), got " + std::to_string(s.top_k));
  require(std::isfinite(s.top_p) && s.top_p > 0.0f && s.top_p <= 1.0f, "top_p",
          "must be in (0, 1], got " + str(s.top_p));
  require(std::isfinite(s.min_p) && s.min_p >= 0.0f && s.min_p <= 1.0f, "min_p",
          "must be in [0, 1], got " + str(s.min_p));
  require(std::isfinite(s.repetition_penalty) && s.repetition_penalty > 0.0f, "repetition_penalty",
          "must be > 0, got " + str(s.repetition_penalty));
  require(std::isfinite(s.presence_penalty) && std::fabs(s.presence_penalty) <= 2.0f,
          "presence_penalty", "must be in [-2, 2], got " + str(s.presence_penalty));
  require(std::isfinite(s.frequency_penalty) && std::fabs(s.frequency_penalty) <= 2.0f,
          "frequency_penalty", "must be in [-2, 2], got " + str(s.frequency_penalty));
  require(s.logprobs >= -1 && s.logprobs <= kMaxLogprobs, "logprobs",
          "must be in [0, " + std::to_string(kMaxLogprobs) + "] (or absent), got " +
              std::to_string(s.logprobs));
  for (size_t i = 0; i < s.stop.size(); ++i)
    require(!s.stop[i].empty(), "stop", "entry " + std::to_string(i) + " is an empty string");
  for (int32_t id : s.stop_token_ids)
    require(id >= 0 && id < lim.vocab_size, "stop_token_ids",
            "token " + std::to_string(id) + " is outside the vocabulary");
  validate_beam_search(s, lim.max_num_seqs);
}

}  // namespace tessera
