// BeamSearch (engine/beam_search.h) on hand-made log-softmax rows. Expected results come from
// brute-force enumeration of every sequence on a tiny vocabulary, not from the search.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/beam_search.h"

namespace tessera {
namespace {

constexpr int kVocab = 5;
constexpr int32_t kEos = 0;

// A toy model: a fixed log-softmax row for every prefix (pseudo-random, seeded by it).
class ToyModel {
 public:
  explicit ToyModel(uint32_t seed) : seed_(seed) {}
  const std::vector<float>& row(const std::vector<int32_t>& prefix) {
    auto it = rows_.find(prefix);
    if (it != rows_.end()) return it->second;
    uint32_t h = seed_;
    for (int32_t t : prefix) h = h * 31u + static_cast<uint32_t>(t) + 7u;
    std::mt19937 rng(h);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> logits(kVocab);
    for (float& x : logits) x = normal(rng);
    double z = 0.0;
    for (float x : logits) z += std::exp(static_cast<double>(x));
    for (float& x : logits) x = static_cast<float>(x - std::log(z));
    return rows_.emplace(prefix, logits).first->second;
  }

 private:
  uint32_t seed_;
  std::map<std::vector<int32_t>, std::vector<float>> rows_;
};

struct Scored {
  std::vector<int32_t> tokens;
  double score;
};

// Every finished sequence up to max_len: ending in EOS, or max_len long without one.
std::vector<Scored> enumerate_all(ToyModel& model, int max_len, float length_penalty,
                                  bool use_eos) {
  std::vector<Scored> out;
  std::vector<std::pair<std::vector<int32_t>, double>> frontier{{{}, 0.0}};
  for (int len = 1; len <= max_len; ++len) {
    std::vector<std::pair<std::vector<int32_t>, double>> next;
    for (const auto& [prefix, sum] : frontier) {
      const std::vector<float> row = model.row(prefix);
      for (int32_t t = 0; t < kVocab; ++t) {
        std::vector<int32_t> seq = prefix;
        seq.push_back(t);
        const double s = sum + row[static_cast<size_t>(t)];
        if ((use_eos && t == kEos) || len == max_len) {
          out.push_back({seq, s / std::pow(static_cast<double>(len), length_penalty)});
        } else {
          next.emplace_back(seq, s);
        }
      }
    }
    frontier = std::move(next);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Scored& a, const Scored& b) { return a.score > b.score; });
  return out;
}

// Runs the search on the toy model until done.
std::vector<BeamHypothesis> run(ToyModel& model, const BeamSearchConfig& cfg, int n) {
  BeamSearch search(cfg);
  while (!search.done()) {
    std::vector<std::vector<float>> storage;
    for (const Beam& b : search.beams()) storage.push_back(model.row(b.tokens));
    std::vector<std::optional<std::span<const float>>> rows(storage.begin(), storage.end());
    search.step(rows);
  }
  return search.best(n);
}

}  // namespace

TEST_CASE("beam search with room for every prefix finds the brute-force best", "[beam]") {
  // W = 25 >= 5^2 live prefixes: nothing is pruned before the last step, whose top W
  // candidates include every sequence that can make the top n.
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    for (float lp : {1.0f, 0.0f, 2.0f, -0.5f}) {
      for (bool use_eos : {true, false}) {
        ToyModel model(seed);
        BeamSearchConfig cfg;
        cfg.width = 25;
        cfg.length_penalty = lp;
        cfg.max_new_tokens = 3;
        if (use_eos) cfg.eos_ids = {kEos};
        const std::vector<Scored> want = enumerate_all(model, 3, lp, use_eos);
        const std::vector<BeamHypothesis> got = run(model, cfg, 6);
        INFO("seed " << seed << " length_penalty " << lp << " eos " << use_eos);
        REQUIRE(got.size() == 6);
        for (size_t i = 0; i < got.size(); ++i) {
          CHECK(got[i].tokens == want[i].tokens);
          CHECK(got[i].score == Approx(want[i].score).epsilon(1e-6));
          CHECK(got[i].eos == (use_eos && got[i].tokens.back() == kEos));
          double sum = 0.0;
          for (float l : got[i].token_logprobs) sum += l;
          CHECK(got[i].sum_logprob == Approx(sum).epsilon(1e-6));
        }
      }
    }
  }
}

TEST_CASE("beam search width 1 is greedy decoding", "[beam]") {
  ToyModel model(9);
  BeamSearchConfig cfg;
  cfg.width = 1;
  cfg.max_new_tokens = 4;
  const std::vector<BeamHypothesis> got = run(model, cfg, 1);
  std::vector<int32_t> greedy;
  for (int i = 0; i < 4; ++i) {
    const std::vector<float>& row = model.row(greedy);
    greedy.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
  }
  REQUIRE(got.size() == 1);
  CHECK(got[0].tokens == greedy);
}

namespace {
// A row from explicit probabilities (log taken here).
std::vector<float> logp(std::vector<double> p) {
  std::vector<float> out;
  for (double x : p) out.push_back(static_cast<float>(std::log(x)));
  return out;
}
std::vector<BeamStepChoice> step_all(BeamSearch& s, const std::vector<std::vector<float>>& rows) {
  std::vector<std::optional<std::span<const float>>> r(rows.begin(), rows.end());
  return s.step(r);
}
}  // namespace

TEST_CASE("beam search: an EOS outside the top W does not finish a hypothesis", "[beam]") {
  BeamSearchConfig cfg;
  cfg.width = 2;
  cfg.max_new_tokens = 8;
  cfg.eos_ids = {kEos};
  BeamSearch s(cfg);
  // Ranks: 1 (0.5), 2 (0.3), EOS (0.1, rank 2 >= W), 3, 4.
  const auto first = step_all(s, {logp({0.1, 0.5, 0.3, 0.06, 0.04})});
  CHECK(s.hypotheses().empty());
  REQUIRE(first.size() == 2);
  CHECK(first[0].token == 1);
  CHECK(first[1].token == 2);
  // Next: beam "1" puts EOS at the top (0.5 * 0.9 = 0.45, rank 0): a hypothesis of length 2.
  const auto second =
      step_all(s, {logp({0.9, 0.04, 0.03, 0.02, 0.01}), logp({0.01, 0.3, 0.29, 0.2, 0.2})});
  REQUIRE(s.hypotheses().size() == 1);
  CHECK(s.hypotheses()[0].tokens == std::vector<int32_t>{1, kEos});
  CHECK(s.hypotheses()[0].score == Approx(std::log(0.45) / 2.0));
  // The two live beams continue beam "2" (0.3 * 0.3 and 0.3 * 0.29).
  REQUIRE(second.size() == 2);
  CHECK(second[0].parent == 1);
  CHECK(second[1].parent == 1);
  CHECK(second[0].token == 1);
  CHECK(second[1].token == 2);
}

TEST_CASE("beam search stops when no live beam can beat the worst hypothesis", "[beam]") {
  BeamSearchConfig cfg;
  cfg.width = 2;
  cfg.max_new_tokens = 10;
  cfg.eos_ids = {kEos};
  BeamSearch s(cfg);
  step_all(s, {logp({0.05, 0.5, 0.45, 0.0, 0.0})});  // beams 1, 2; EOS rank 2: ignored
  REQUIRE_FALSE(s.done());
  // Both beams end almost surely: two hypotheses; the best live beam is far worse.
  step_all(s, {logp({0.98, 0.005, 0.005, 0.005, 0.005}), logp({0.98, 0.005, 0.005, 0.005, 0.005})});
  REQUIRE(s.hypotheses().size() == 2);
  CHECK(s.done());
  const auto best = s.best(2);
  CHECK(best[0].tokens == std::vector<int32_t>{1, kEos});
  CHECK(best[1].tokens == std::vector<int32_t>{2, kEos});
}

TEST_CASE("beam search drops beams without a row", "[beam]") {
  BeamSearchConfig cfg;
  cfg.width = 2;
  cfg.max_new_tokens = 5;
  BeamSearch s(cfg);
  step_all(s, {logp({0.1, 0.5, 0.3, 0.06, 0.04})});  // beams [1], [2]
  const std::vector<float> row = logp({0.1, 0.1, 0.1, 0.1, 0.6});
  std::vector<std::optional<std::span<const float>>> rows{std::nullopt,
                                                          std::span<const float>(row)};
  const auto next = s.step(rows);
  REQUIRE(next.size() == 2);
  for (const BeamStepChoice& c : next) CHECK(c.parent == 1);
  CHECK(s.beams()[0].tokens == std::vector<int32_t>{2, 4});
}

}  // namespace tessera
