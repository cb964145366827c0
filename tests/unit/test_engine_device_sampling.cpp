// Which rows the engine leaves to the backend's sampler, and the spec it hands over: the
// sampling parameters mapped onto its conventions (top_k -1 = off, greedy below
// kGreedyEpsilon) with the host sampler's draw (seed, output index) and penalty history.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/model_runner.h"

using namespace tessera;

TEST_CASE("every row but beam search and a forking first token is sampled on the device",
          "[engine]") {
  const std::vector<int32_t> prompt = {1, 2, 3}, output;
  auto on_device = [&](auto change, bool needs_host_row = false) {
    SamplingParams q;
    change(q);
    SeqSampling view{&q, prompt, output, 1, 0, needs_host_row};
    return samples_on_device(view);
  };
  CHECK(on_device([](SamplingParams&) {}));
  CHECK(on_device([](SamplingParams& q) { q.top_k = 40, q.top_p = 0.9f, q.temperature = 0.7f; }));
  CHECK(on_device([](SamplingParams& q) { q.temperature = 0.0f; }));
  CHECK(on_device([](SamplingParams& q) { q.logprobs = 5; }));
  CHECK(on_device([](SamplingParams& q) { q.n = 2; }));  // a forked choice
  CHECK(on_device([](SamplingParams& q) { q.min_p = 0.1f; }));
  CHECK(on_device([](SamplingParams& q) { q.repetition_penalty = 1.1f; }));
  CHECK(on_device([](SamplingParams& q) { q.frequency_penalty = -0.5f; }));
  CHECK_FALSE(on_device([](SamplingParams& q) { q.n = 2; }, /*needs_host_row=*/true));
  CHECK_FALSE(on_device([](SamplingParams& q) { q.use_beam_search = true, q.n = 2; }));
}

TEST_CASE("the device spec carries penalties, min_p, logprobs and the penalty history",
          "[engine]") {
  SamplingParams p;
  p.min_p = 0.05f;
  p.logprobs = 3;
  const std::vector<int32_t> prompt = {1, 2, 3}, output = {7, 8};
  SeqSampling view{&p, prompt, output, 99};
  SampleSpec s = device_sample_spec(view);
  CHECK(s.min_p == 0.05f);
  CHECK(s.logprobs == 3);
  CHECK_FALSE(s.penalized());
  CHECK(s.prompt.empty());  // no history travels without penalties
  p.presence_penalty = 0.5f;
  p.repetition_penalty = 1.2f;
  s = device_sample_spec(view);
  CHECK(s.penalized());
  CHECK(s.repetition_penalty == 1.2f);
  CHECK(s.presence_penalty == 0.5f);
  CHECK(s.prompt.size() == 3);
  CHECK(s.output.size() == 2);
  CHECK(s.pending_row == -1);
}

TEST_CASE("device logprobs convert to the host sampler's form", "[engine]") {
  SampledLogprobs l;
  l.chosen = -0.25f;
  l.num_top = 2;
  l.top_ids[0] = 5, l.top_logprobs[0] = -0.1f;
  l.top_ids[1] = 9, l.top_logprobs[1] = -2.5f;
  const TokenLogprob t = token_logprob(9, l);
  CHECK(t.token == 9);
  CHECK(t.logprob == -0.25f);
  REQUIRE(t.top.size() == 2);
  CHECK(t.top[0] == std::pair<int32_t, float>(5, -0.1f));
  CHECK(t.top[1] == std::pair<int32_t, float>(9, -2.5f));
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
