#pragma once
// Host-side token sampling on one logits row. Pure functions: the same logits, params,
// history and key always give the same token, whatever else shares the batch.
//
// Order of processing (as vLLM v1 does it):
//   raw logits
//     -> penalties   repetition (HF/vLLM: over prompt + output; logit > 0 ? l / r : l * r)
//                    presence / frequency (OpenAI: over output only; l -= p * [c > 0] + f * c)
//     -> greedy      temperature < kGreedyEpsilon: argmax (lowest id on ties), done
//     -> temperature softmax(l / T)
//     -> min_p       drop tokens with prob < min_p * max prob
//     -> top_k       keep the k most likely (ties: lower id first)
//     -> top_p       keep the smallest most-likely set whose mass >= top_p (renormalized)
//     -> draw        inverse CDF over survivors sorted by prob desc, id asc
// Logprobs are the *raw* model log-softmax (before penalties and temperature), as vLLM
// returns by default; the chosen token's logprob is reported even when it is not in top.
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "engine/request.h"

namespace tessera {

inline constexpr float kGreedyEpsilon = 1e-5f;
inline constexpr int kMaxLogprobs = 20;

// The tokens a penalty looks at. Spans must outlive the call.
struct TokenHistory {
  std::span<const int32_t> prompt;
  std::span<const int32_t> output;  // the draw index is output.size()
};

struct SampleResult {
  int32_t token = 0;
  std::optional<TokenLogprob> logprob;  // set when params.logprobs >= 0
};

// Applies repetition, presence and frequency penalties in place.
void apply_penalties(std::span<float> logits, const SamplingParams& params,
                     const TokenHistory& history);

// The final sampling distribution after temperature, min_p, top_k and top_p: surviving
// (token, probability) pairs sorted by probability desc, then id asc; probabilities sum to 1.
// `logits` are already penalized. Not for greedy params.
std::vector<std::pair<int32_t, double>> sampling_distribution(std::span<const float> logits,
                                                              const SamplingParams& params);

// Lowest id among the maximal logits.
int32_t argmax_token(std::span<const float> logits);

// Raw log-softmax of `logits`: the chosen token's logprob plus the `num_top` best
// alternatives (best first, ties by lower id).
TokenLogprob raw_logprobs(std::span<const float> logits, int32_t chosen, int num_top);

// Counter-based randomness (common/sampling_rng.h, shared with the CUDA sampler): a uniform
// in [0, 1) determined only by the choice's seed and the index of the output token being
// sampled. A request recomputed after preemption or run in a different batch, or sampled
// on the device instead of here, draws the same number.
double sample_uniform(uint64_t seed, int64_t output_index);

// Full pipeline for one row. `seed` is the choice's seed (request seed + choice index).
SampleResult sample_token(std::span<const float> logits, const SamplingParams& params,
                          const TokenHistory& history, uint64_t seed);

}  // namespace tessera
