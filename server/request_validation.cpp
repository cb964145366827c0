#include "server/request_validation.h"

#include <cmath>

#include "server/api_error.h"

namespace tessera {
namespace {

std::string fmt(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

void check_range(const char* name, double v, double lo, double hi, bool lo_open = false) {
  bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
  if (!ok) {
    throw invalid_param(name, std::string("must be in ") + (lo_open ? "(" : "[") + fmt(lo) + ", " +
                                  fmt(hi) + "], got " + fmt(v));
  }
}

}  // namespace

void validate_sampling(const SamplingParams& s, int vocab_size) {
  check_range("temperature", s.temperature, 0.0, 2.0);
  check_range("top_p", s.top_p, 0.0, 1.0, /*lo_open=*/true);
  if (s.top_k < 0) throw invalid_param("top_k", "must be >= 0 (0 or -1 disables it)");
  check_range("min_p", s.min_p, 0.0, 1.0);
  check_range("repetition_penalty", s.repetition_penalty, 0.0, 2.0, /*lo_open=*/true);
  check_range("presence_penalty", s.presence_penalty, -2.0, 2.0);
  check_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0);
  if (s.max_tokens < 1) throw invalid_param("max_tokens", "must be >= 1");
  if (s.n < 1 || s.n > kMaxChoices) {
    throw invalid_param("n", "must be in [1, " + std::to_string(kMaxChoices) + "]");
  }
  if (s.logprobs < -1 || s.logprobs > kMaxLogprobs) {
    throw invalid_param("logprobs", "must be in [0, " + std::to_string(kMaxLogprobs) + "]");
  }
  if (s.stop.size() > static_cast<size_t>(kMaxStopStrings)) {
    throw invalid_param("stop", "at most " + std::to_string(kMaxStopStrings) + " strings");
  }
  for (const auto& stop : s.stop) {
    if (stop.empty()) throw invalid_param("stop", "must not contain empty strings");
    if (stop.size() > kMaxStopStringBytes) {
      throw invalid_param(
          "stop", "strings must be at most " + std::to_string(kMaxStopStringBytes) + " bytes");
    }
  }
  for (int32_t id : s.stop_token_ids) {
    if (id < 0 || id >= vocab_size) {
      throw invalid_param("stop_token_ids", "token id " + std::to_string(id) +
                                                " is outside the vocabulary [0, " +
                                                std::to_string(vocab_size) + ")");
    }
  }
}

void validate_prompt_tokens(const std::vector<int32_t>& ids, int vocab_size,
                            const std::string& param) {
  if (ids.empty()) throw invalid_param(param, "must not be empty");
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      throw invalid_param(param, "token id " + std::to_string(id) +
                                     " is outside the vocabulary [0, " +
                                     std::to_string(vocab_size) + ")");
    }
  }
}

int resolve_max_tokens(int prompt_len, std::optional<int64_t> requested, int default_max,
                       int max_model_len, const std::string& param,
                       const std::string& prompt_param) {
  const int64_t room = int64_t(max_model_len) - prompt_len;
  if (room < 1) {
    throw ApiError(400, "invalid_request_error",
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens, but the prompt has " + std::to_string(prompt_len) +
                       " tokens, leaving no room for a completion.",
                   prompt_param, "context_length_exceeded");
  }
  if (!requested) return static_cast<int>(std::min<int64_t>(default_max, room));
  if (*requested < 1) throw invalid_param(param, "must be >= 1");
  if (*requested > room) {
    throw ApiError(400, "invalid_request_error",
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, you requested " +
                       std::to_string(prompt_len + *requested) + " tokens (" +
                       std::to_string(prompt_len) + " in the prompt, " +
                       std::to_string(*requested) + " for the completion).",
                   param, "context_length_exceeded");
  }
  return static_cast<int>(*requested);
}

}  // namespace tessera
