// Which rows the engine leaves to the backend's sampler, and the spec it hands over: the
// parameters the device sampler covers, mapped onto its conventions (top_k -1 = off, greedy
// below kGreedyEpsilon) with the host sampler's draw (seed, output index).
#include <catch2/catch.hpp>

#include <vector>

#include "engine/model_runner.h"

using namespace tessera;

TEST_CASE("only temperature / top-k / top-p rows are sampled on the device", "[engine]") {
  SamplingParams p;
  CHECK(samples_on_device(p));
  auto with = [](auto change) {
    SamplingParams q;
    change(q);
    return samples_on_device(q);
  };
  CHECK(with([](SamplingParams& q) { q.top_k = 40, q.top_p = 0.9f, q.temperature = 0.7f; }));
  CHECK(with([](SamplingParams& q) { q.temperature = 0.0f; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.logprobs = 0; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.n = 2; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.min_p = 0.1f; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.repetition_penalty = 1.1f; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.presence_penalty = 0.5f; }));
  CHECK_FALSE(with([](SamplingParams& q) { q.frequency_penalty = -0.5f; }));
}

TEST_CASE("the device spec carries the host sampler's conventions and draw", "[engine]") {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = -1;
  p.top_p = 0.95f;
  const std::vector<int32_t> prompt = {1, 2, 3}, output = {7, 8};
  SeqSampling view{&p, prompt, output, 1234};
  SampleSpec s = device_sample_spec(view);
  CHECK(s.temperature == 0.8f);
  CHECK(s.top_k == 0);  // the device sampler rejects negative top_k
  CHECK(s.top_p == 0.95f);
  CHECK(s.seed == 1234);
  CHECK(s.offset == 2);  // the index of the token being drawn, as sample_uniform takes it
  p.temperature = kGreedyEpsilon / 2;
  p.top_k = 5;
  s = device_sample_spec(view);
  CHECK(s.temperature == 0.0f);
  CHECK(s.top_k == 5);
}
