// Speculative decoding's pure parts: n-gram lookup, acceptance by matching, the draft-length
// controller, and that matching verification preserves the target distribution.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "engine/ngram_proposer.h"
#include "engine/sampler.h"
#include "engine/spec_decode.h"

using namespace tessera;

TEST_CASE("ngram lookup proposes what followed the latest earlier occurrence", "[spec]") {
  using V = std::vector<int32_t>;
  // ... 1 2 3 [9 9] ... 1 2 3 [7 8 5] ... 1 2 3  -> the latest: 7 8 5
  const V t = {1, 2, 3, 9, 9, 4, 1, 2, 3, 7, 8, 5, 6, 1, 2, 3};
  CHECK(ngram_lookup(t, 1, 3, 3) == V{7, 8, 5});
  // Past the end the proposal repeats its own period.
  CHECK(ngram_lookup(t, 1, 3, 10) == V{7, 8, 5, 6, 1, 2, 3, 7, 8, 5});
  CHECK(ngram_lookup(t, 1, 3, 0).empty());
  // No suffix recurs.
  CHECK(ngram_lookup(V{1, 2, 3, 4}, 1, 3, 4).empty());
  // Longer suffixes win: "5 3" recurs once (-> 8), "3" alone most recently (-> 9).
  const V u = {5, 3, 8, 1, 3, 9, 2, 5, 3};
  CHECK(ngram_lookup(u, 1, 2, 1) == V{8});
  CHECK(ngram_lookup(u, 1, 1, 1) == V{9});
  CHECK(ngram_lookup(u, 3, 4, 1).empty());  // min_n 3: "2 5 3" never recurs
  // Overlap: a run of one token predicts more of it.
  CHECK(ngram_lookup(V{4, 4, 4, 4}, 1, 2, 3) == V{4, 4, 4});
  CHECK(ngram_lookup(V{1, 2, 1, 2, 1}, 1, 4, 4) == V{2, 1, 2, 1});
}

TEST_CASE("accepted prefix is the draft's longest agreement with the target", "[spec]") {
  using V = std::vector<int32_t>;
  CHECK(accepted_prefix(V{1, 2, 3}, V{1, 2, 3, 4}) == 3);
  CHECK(accepted_prefix(V{1, 2, 3}, V{1, 5, 3, 4}) == 1);
  CHECK(accepted_prefix(V{1, 2, 3}, V{0, 2, 3, 4}) == 0);
  CHECK(accepted_prefix(V{}, V{9}) == 0);
  CHECK_THROWS(accepted_prefix(V{1, 2}, V{1, 2}));
}

TEST_CASE("the controller drafts less as acceptance falls and stops when compute-bound", "[spec]") {
  SpecControlConfig c;
  c.max_draft = 6;
  c.max_step_tokens = 64;
  c.draft_cost = 0.1;
  SpecController high(c);
  for (int i = 0; i < 50; ++i) high.record(10, 9);
  SpecController low(c);
  for (int i = 0; i < 50; ++i) low.record(10, 1);
  CHECK(high.acceptance_rate() > 0.85);
  CHECK(low.acceptance_rate() < 0.15);
  const int k_high = high.draft_len(1), k_low = low.draft_len(1);
  CHECK(k_high == 6);
  CHECK(k_low < k_high);
  CHECK(low.draft_len(1) == 0);
  // 16 sequences * (k + 1) <= 64 -> k <= 3; 64 sequences: none.
  CHECK(high.draft_len(16) == 3);
  CHECK(high.draft_len(64) == 0);
  c.adaptive = false;
  SpecController fixed(c);
  for (int i = 0; i < 50; ++i) fixed.record(10, 0);
  CHECK(fixed.draft_len(1) == 6);
}

// Verification by matching, as the runner does it: the target samples the token after the
// context (with the request's seed and output index), the draft is accepted when equal.
// Whatever the (deterministic) draft, the emitted token must follow the target's
// distribution: total-variation distance over 100k draws on a small vocabulary.
TEST_CASE("matching verification keeps the target distribution", "[spec]") {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 1.5f};
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 5;
  params.top_p = 0.95f;
  std::vector<float> penalized = logits;
  const auto dist = sampling_distribution(penalized, params);
  std::map<int32_t, double> p;
  for (const auto& [tok, prob] : dist) p[tok] = prob;

  for (int32_t draft : {0, 3, 4}) {  // likely, unlikely, cut by top-k
    constexpr int kDraws = 100000;
    std::map<int32_t, int> counts;
    int accepted = 0;
    for (int i = 0; i < kDraws; ++i) {
      const int32_t target = sample_token(logits, params, {}, 1000 + i).token;
      const std::vector<int32_t> d = {draft};
      const std::vector<int32_t> sampled = {target, 0};
      const int a =
          accepted_prefix(std::span<const int32_t>(d).first(1), std::span<const int32_t>(sampled));
      accepted += a;
      ++counts[a == 1 ? draft : target];
    }
    double tv = 0;
    for (int32_t t = 0; t < 6; ++t) {
      const double q = static_cast<double>(counts[t]) / kDraws;
      tv += std::abs(q - (p.count(t) ? p[t] : 0.0));
    }
    tv /= 2;
    INFO("draft " << draft << " tv " << tv);
    CHECK(tv < 0.01);
    // Acceptance happens with the target's probability of the draft (min(1, p / q), q = 1).
    CHECK(std::abs(static_cast<double>(accepted) / kDraws - (p.count(draft) ? p[draft] : 0.0)) <
          0.01);
  }
}
