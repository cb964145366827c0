// Sampler: exact distributions after each processing stage, penalties, seeds, logprobs.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "common/error.h"
#include "engine/sampler.h"

using namespace tessera;

namespace {

std::vector<float> logits_of_probs(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

void check_dist(const std::vector<std::pair<int32_t, double>>& got,
                const std::map<int32_t, double>& want) {
  REQUIRE(got.size() == want.size());
  for (const auto& [id, p] : got) {
    INFO("token " << id);
    REQUIRE(want.count(id) == 1);
    CHECK(p == Approx(want.at(id)).margin(1e-6));
  }
}

SamplingParams random_params() {
  SamplingParams p;
  p.temperature = 1.0f;
  return p;
}

}  // namespace

TEST_CASE("temperature 1 reproduces the model distribution", "[sampler]") {
  const auto l = logits_of_probs({0.5, 0.25, 0.125, 0.125});
  auto d = sampling_distribution(l, random_params());
  check_dist(d, {{0, 0.5}, {1, 0.25}, {2, 0.125}, {3, 0.125}});
  // Sorted by probability desc, ties by lower id.
  CHECK(d[0].first == 0);
  CHECK(d[2].first == 2);
  CHECK(d[3].first == 3);
}

TEST_CASE("temperature reshapes the distribution as softmax(l / T)", "[sampler]") {
  const auto l = logits_of_probs({0.5, 0.25, 0.125, 0.125});
  SamplingParams p = random_params();
  p.temperature = 2.0f;  // p_i ∝ sqrt(q_i)
  const double a = std::sqrt(0.5), b = std::sqrt(0.25), c = std::sqrt(0.125);
  const double z = a + b + 2 * c;
  check_dist(sampling_distribution(l, p), {{0, a / z}, {1, b / z}, {2, c / z}, {3, c / z}});
  p.temperature = 0.5f;  // p_i ∝ q_i^2
  const double z2 = 0.25 + 0.0625 + 2 * 0.015625;
  check_dist(sampling_distribution(l, p),
             {{0, 0.25 / z2}, {1, 0.0625 / z2}, {2, 0.015625 / z2}, {3, 0.015625 / z2}});
}

TEST_CASE("top_k keeps the k most likely and renormalizes", "[sampler]") {
  const auto l = logits_of_probs({0.1, 0.4, 0.2, 0.3});
  SamplingParams p = random_params();
  p.top_k = 2;
  check_dist(sampling_distribution(l, p), {{1, 0.4 / 0.7}, {3, 0.3 / 0.7}});
  p.top_k = 1;
  check_dist(sampling_distribution(l, p), {{1, 1.0}});
  p.top_k = 10;  // larger than the vocabulary: no-op
  check_dist(sampling_distribution(l, p), {{0, 0.1}, {1, 0.4}, {2, 0.2}, {3, 0.3}});
}

TEST_CASE("top_p keeps the smallest set reaching the mass", "[sampler]") {
  const auto l = logits_of_probs({0.1, 0.4, 0.2, 0.3});
  SamplingParams p = random_params();
  p.top_p = 0.5f;  // 0.4 < 0.5, 0.4 + 0.3 >= 0.5
  check_dist(sampling_distribution(l, p), {{1, 0.4 / 0.7}, {3, 0.3 / 0.7}});
  p.top_p = 0.35f;  // the top token alone suffices
  check_dist(sampling_distribution(l, p), {{1, 1.0}});
  p.top_p = 0.85f;
  check_dist(sampling_distribution(l, p), {{1, 0.4 / 0.9}, {3, 0.3 / 0.9}, {2, 0.2 / 0.9}});
}

TEST_CASE("top_p finds the nucleus in a large vocabulary", "[sampler]") {
  // 1000 tokens: token i has weight 2^-(i mod 30) so the nucleus spans many sort rounds.
  std::vector<double> w(1000);
  double z = 0;
  for (int i = 0; i < 1000; ++i) z += (w[i] = std::pow(0.5, i % 30) + 1e-3 * i);
  std::vector<double> probs;
  for (double x : w) probs.push_back(x / z);
  SamplingParams p = random_params();
  p.top_p = 0.9f;
  auto d = sampling_distribution(logits_of_probs(probs), p);
  // Reference: sort all and cut.
  std::vector<std::pair<double, int>> ref;
  for (int i = 0; i < 1000; ++i) ref.emplace_back(-probs[i], i);
  std::sort(ref.begin(), ref.end());
  double cum = 0;
  size_t n = 0;
  while (cum < 0.9) cum += -ref[n++].first;
  REQUIRE(d.size() == n);
  for (size_t i = 0; i < n; ++i) CHECK(d[i].first == ref[i].second);
}

TEST_CASE("min_p drops tokens below min_p times the top probability", "[sampler]") {
  const auto l = logits_of_probs({0.1, 0.4, 0.2, 0.3});
  SamplingParams p = random_params();
  p.min_p = 0.45f;  // threshold 0.18: 0.1 goes, 0.2 stays
  check_dist(sampling_distribution(l, p), {{1, 0.4 / 0.9}, {2, 0.2 / 0.9}, {3, 0.3 / 0.9}});
  p.min_p = 0.9f;
  check_dist(sampling_distribution(l, p), {{1, 1.0}});
}

TEST_CASE("filters compose: min_p, then top_k, then top_p on renormalized mass", "[sampler]") {
  const auto l = logits_of_probs({0.05, 0.35, 0.25, 0.2, 0.15});
  SamplingParams p = random_params();
  p.min_p = 0.2f;  // threshold 0.07: drops 0.05
  p.top_k = 3;     // keeps 0.35, 0.25, 0.2 -> 0.4375, 0.3125, 0.25
  p.top_p = 0.7f;  // 0.4375 < 0.7, + 0.3125 = 0.75 >= 0.7
  check_dist(sampling_distribution(l, p), {{1, 0.35 / 0.6}, {2, 0.25 / 0.6}});
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits", "[sampler]") {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> prompt = {0, 0};
  const std::vector<int32_t> output = {1, 1};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  apply_penalties(l, p, {prompt, output});
  CHECK(l == std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f});
}

TEST_CASE("presence and frequency penalties count output tokens only", "[sampler]") {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> prompt = {0, 2};
  const std::vector<int32_t> output = {1, 3, 1};
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  apply_penalties(l, p, {prompt, output});
  CHECK(l[0] == 2.0f);
  CHECK(l[1] == Approx(-1.0f - 0.5f - 0.5f));
  CHECK(l[2] == 0.5f);
  CHECK(l[3] == Approx(3.0f - 0.5f - 0.25f));
}

TEST_CASE("greedy takes the argmax of penalized logits, lowest id on ties", "[sampler]") {
  SamplingParams p;
  p.temperature = 0.0f;
  const std::vector<float> l = {1.0f, 3.0f, 3.0f, 2.0f};
  CHECK(sample_token(l, p, {}, 7).token == 1);
  const std::vector<int32_t> out = {1};
  p.frequency_penalty = 1.5f;  // 3 - 1.5 = 1.5 < 3 (token 2)
  CHECK(sample_token(l, p, {{}, out}, 7).token == 2);
}

TEST_CASE("draws follow the distribution and are reproducible per seed", "[sampler]") {
  const auto l = logits_of_probs({0.1, 0.4, 0.2, 0.3});
  SamplingParams p = random_params();
  std::vector<int> counts(4, 0);
  const int kDraws = 40000;
  std::vector<int32_t> output;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t t = sample_token(l, p, {}, static_cast<uint64_t>(i)).token;
    ++counts[t];
  }
  // 4 sigma of a binomial at p <= 0.4 and n = 40000 is < 0.01.
  CHECK(counts[0] / double(kDraws) == Approx(0.1).margin(0.01));
  CHECK(counts[1] / double(kDraws) == Approx(0.4).margin(0.01));
  CHECK(counts[2] / double(kDraws) == Approx(0.2).margin(0.01));
  CHECK(counts[3] / double(kDraws) == Approx(0.3).margin(0.01));

  // Same seed and output index -> same token; the index changes the draw.
  std::vector<int32_t> seq_a, seq_b;
  for (int step = 0; step < 64; ++step) {
    seq_a.push_back(sample_token(l, p, {{}, seq_a}, 1234).token);
    seq_b.push_back(sample_token(l, p, {{}, seq_b}, 1234).token);
  }
  CHECK(seq_a == seq_b);
  CHECK(std::count(seq_a.begin(), seq_a.end(), seq_a[0]) < 64);
  CHECK(sample_uniform(1, 0) != sample_uniform(2, 0));
  CHECK(sample_uniform(1, 0) != sample_uniform(1, 1));
}

TEST_CASE("logprobs are the raw log-softmax with top alternatives", "[sampler]") {
  const std::vector<float> l = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  double z = 0;
  for (float x : l) z += std::exp(double(x));
  auto lp = [&](int i) { return double(l[i]) - std::log(z); };
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 5.0f;  // penalties change the choice, not the reported logprobs
  p.logprobs = 3;
  const std::vector<int32_t> prompt = {1, 3};
  auto s = sample_token(l, p, {prompt, {}}, 0);
  CHECK(s.token == 2);
  REQUIRE(s.logprob.has_value());
  CHECK(s.logprob->token == 2);
  CHECK(s.logprob->logprob == Approx(lp(2)));
  REQUIRE(s.logprob->top.size() == 3);
  CHECK(s.logprob->top[0].first == 1);
  CHECK(s.logprob->top[1].first == 3);
  CHECK(s.logprob->top[2].first == 2);
  CHECK(s.logprob->top[0].second == Approx(lp(1)));
  auto r = raw_logprobs(l, 4, 0);
  CHECK(r.top.empty());
  CHECK(r.logprob == Approx(lp(4)));
}

TEST_CASE("a NaN logits row is an error, not a crash", "[sampler]") {
  const std::vector<float> l = {1.0f, std::nanf(""), 0.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  CHECK_THROWS_AS(sample_token(l, p, {}, 0), Error);
  p.temperature = 1.0f;
  CHECK_THROWS_AS(sample_token(l, p, {}, 0), Error);
}
