#pragma once
// What frontends hand the engine and what they read back. Plain structs; validated by the
// frontend before submit (Engine::submit re-checks and throws Error(kInvalidArgument)).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

using Clock = std::chrono::steady_clock;

// Beam search's stop rule once `width` finished hypotheses exist (transformers' early_stopping):
// kHeuristic = False (the default), kFirst = True, kNever = "never".
enum class EarlyStopping { kHeuristic, kFirst, kNever };

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;
  int max_tokens = 16;
  std::vector<std::string> stop;        // stop strings; never emitted
  std::vector<int32_t> stop_token_ids;  // extra stop ids
  bool ignore_eos = false;
  int logprobs = -1;  // -1: none; k >= 0: chosen token's logprob plus k alternatives
  int n = 1;          // independent samples sharing the prompt's KV blocks
  bool skip_special_tokens = true;
  // Beam search (vLLM's extension fields): best_of beams (n when 0) scored by the raw
  // log-softmax; the n best finished beams are the choices. See engine/beam_search.h.
  bool use_beam_search = false;
  int best_of = 0;
  float length_penalty = 1.0f;  // score = sum of logprobs / generated_len ** length_penalty
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;

  int beam_width() const { return best_of > 0 ? best_of : n; }
};

struct GenerationRequest {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int priority = 0;  // higher runs first
  std::optional<Clock::time_point> deadline;
  Clock::time_point arrival = Clock::now();
};

enum class FinishReason { kStop, kLength, kCancelled, kDeadline, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", ...

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // alternatives, best first
};

// One event of one choice (index < n). Text deltas concatenate to the full output.
struct GenerationEvent {
  int index = 0;
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::optional<FinishReason> finish;
  std::string error;  // set with FinishReason::kError
  // Filled on the final event of each choice.
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;
  // Speculative decoding: this choice's tokens proposed (and verified) and accepted.
  int spec_draft_tokens = 0;
  int spec_accepted_tokens = 0;
  std::optional<double> beam_score;  // beam search: the choice's length-penalized score
};

}  // namespace tessera
