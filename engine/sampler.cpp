#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "common/error.h"
#include "common/sampling_rng.h"

namespace tessera {
namespace {

using Candidate = std::pair<int32_t, double>;

// Most likely first; equal probabilities by lower id so every order is deterministic.
bool more_likely(const Candidate& a, const Candidate& b) {
  return a.second > b.second || (a.second == b.second && a.first < b.first);
}

void renormalize(std::vector<Candidate>& c) {
  double sum = 0.0;
  for (const auto& [id, p] : c) sum += p;
  for (auto& [id, p] : c) p /= sum;
}

// Sorted unique ids of `tokens` that index into a vocabulary of `vocab` entries.
std::vector<int32_t> unique_ids(std::span<const int32_t> a, std::span<const int32_t> b,
                                size_t vocab) {
  std::vector<int32_t> ids;
  ids.reserve(a.size() + b.size());
  for (int32_t t : a)
    if (t >= 0 && static_cast<size_t>(t) < vocab) ids.push_back(t);
  for (int32_t t : b)
    if (t >= 0 && static_cast<size_t>(t) < vocab) ids.push_back(t);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void check_finite_row(std::span<const float> logits) {
  if (logits.empty()) throw Error(ErrorKind::kInternal, "sampler: empty logits row");
  for (float l : logits) {
    if (std::isnan(l)) throw Error(ErrorKind::kInternal, "sampler: logits row contains NaN");
  }
}

// Keeps the smallest most-likely prefix whose mass reaches top_p. Sorts only as much of the
// list as needed: the nucleus is usually a few dozen tokens out of tens of thousands.
void apply_top_p(std::vector<Candidate>& c, double top_p) {
  size_t m = std::min<size_t>(c.size(), 64);
  for (;;) {
    std::partial_sort(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(m), c.end(), more_likely);
    double cum = 0.0;
    for (size_t i = 0; i < m; ++i) {
      cum += c[i].second;
      if (cum >= top_p) {
        c.resize(i + 1);
        renormalize(c);
        return;
      }
    }
    if (m == c.size()) return;  // rounding left the total just below top_p: keep all
    m = std::min(c.size(), m * 4);
  }
}

// Survivors of temperature, min_p, top_k and top_p, in no particular order.
std::vector<Candidate> build_candidates(std::span<const float> logits,
                                        const SamplingParams& params) {
  check_finite_row(logits);
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  if (!std::isfinite(max_logit))
    throw Error(ErrorKind::kInternal, "sampler: no finite logit in the row");
  const double inv_t = 1.0 / static_cast<double>(params.temperature);

  std::vector<Candidate> c;
  c.reserve(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
    if (p > 0.0) {
      c.emplace_back(static_cast<int32_t>(i), p);
      sum += p;
    }
  }
  for (auto& [id, p] : c) p /= sum;

  if (params.min_p > 0.0f) {
    // The most likely token has unnormalized weight exp(0) = 1.
    const double threshold = static_cast<double>(params.min_p) / sum;
    std::erase_if(c, [&](const Candidate& x) { return x.second < threshold; });
    renormalize(c);
  }
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < c.size()) {
    std::nth_element(c.begin(), c.begin() + params.top_k, c.end(), more_likely);
    c.resize(static_cast<size_t>(params.top_k));
    renormalize(c);
  }
  if (params.top_p < 1.0f) apply_top_p(c, static_cast<double>(params.top_p));
  return c;
}

}  // namespace

void apply_penalties(std::span<float> logits, const SamplingParams& params,
                     const TokenHistory& history) {
  const size_t vocab = logits.size();
  if (params.repetition_penalty != 1.0f) {
    const float r = params.repetition_penalty;
    for (int32_t id : unique_ids(history.prompt, history.output, vocab)) {
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0.0f ? l / r : l * r;
    }
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    std::vector<int32_t> out(history.output.begin(), history.output.end());
    std::sort(out.begin(), out.end());
    for (size_t i = 0; i < out.size();) {
      size_t j = i;
      while (j < out.size() && out[j] == out[i]) ++j;
      const int32_t id = out[i];
      if (id >= 0 && static_cast<size_t>(id) < vocab) {
        const float count = static_cast<float>(j - i);
        logits[static_cast<size_t>(id)] -=
            params.presence_penalty + params.frequency_penalty * count;
      }
      i = j;
    }
  }
}

std::vector<std::pair<int32_t, double>> sampling_distribution(std::span<const float> logits,
                                                              const SamplingParams& params) {
  if (params.temperature < kGreedyEpsilon)
    throw Error(ErrorKind::kInternal, "sampling_distribution: greedy params have no distribution");
  std::vector<Candidate> c = build_candidates(logits, params);
  std::sort(c.begin(), c.end(), more_likely);
  return c;
}

int32_t argmax_token(std::span<const float> logits) {
  check_finite_row(logits);
  // max_element returns the first maximum, i.e. the lowest id on ties.
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

TokenLogprob raw_logprobs(std::span<const float> logits, int32_t chosen, int num_top) {
  check_finite_row(logits);
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - log_z);
  };

  TokenLogprob out;
  out.token = chosen;
  out.logprob = logprob(chosen);
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(num_top, 0)), logits.size());
  if (k > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    auto better = [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)];
      const float lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), better);
    out.top.reserve(k);
    for (size_t i = 0; i < k; ++i) out.top.emplace_back(ids[i], logprob(ids[i]));
  }
  return out;
}

double sample_uniform(uint64_t seed, int64_t output_index) {
  return static_cast<double>(sampling_uniform(seed, static_cast<uint64_t>(output_index)));
}

SampleResult sample_token(std::span<const float> logits, const SamplingParams& params,
                          const TokenHistory& history, uint64_t seed) {
  SampleResult result;
  const bool penalized = params.repetition_penalty != 1.0f || params.presence_penalty != 0.0f ||
                         params.frequency_penalty != 0.0f;
  if (params.temperature < kGreedyEpsilon && !penalized) {
    // The common greedy case reads the row in place: no copy of a 128k-entry vocabulary.
    result.token = argmax_token(logits);
    if (params.logprobs >= 0) result.logprob = raw_logprobs(logits, result.token, params.logprobs);
    return result;
  }
  std::vector<float> processed(logits.begin(), logits.end());
  apply_penalties(processed, params, history);

  if (params.temperature < kGreedyEpsilon) {
    result.token = argmax_token(processed);
  } else {
    std::vector<Candidate> c = build_candidates(processed, params);
    // Walk survivors in id order so the draw does not depend on how they were filtered.
    if (!std::is_sorted(c.begin(), c.end())) std::sort(c.begin(), c.end());
    const double u = sample_uniform(seed, static_cast<int64_t>(history.output.size()));
    double cum = 0.0;
    result.token = c.back().first;  // rounding: u beyond the summed mass picks the last
    for (const auto& [id, p] : c) {
      cum += p;
      if (u < cum) {
        result.token = id;
        break;
      }
    }
  }
  if (params.logprobs >= 0) result.logprob = raw_logprobs(logits, result.token, params.logprobs);
  return result;
}

}  // namespace tessera
