// Engine metrics with vLLM's meaning: requests (not sequences) running, success = finished
// without error, every ending in request_finished_total by reason.
#include <catch2/catch.hpp>

#include <string>

#include "engine_test_support.h"

using namespace tessera;
using namespace tessera::test;

namespace {

bool has(const metrics::Registry& reg, const std::string& line) {
  return reg.render().find(line) != std::string::npos;
}

GenerationRequest sampled(int n, int max_tokens) {
  GenerationRequest r;
  r.prompt = CharTokenizer().encode("abcdef", false, false);
  r.sampling.temperature = 1.0f;
  r.sampling.ignore_eos = true;
  r.sampling.max_tokens = max_tokens;
  r.sampling.n = n;
  r.sampling.seed = 1;
  return r;
}

}  // namespace

TEST_CASE("num_requests_running counts requests; num_sequences_running counts choices",
          "[engine][metrics]") {
  metrics::Registry reg;
  auto ctl = std::make_shared<ExecutorControl>();
  ctl->script = [](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{-1}; };
  ctl->step_sleep_ms = 5;
  auto engine = make_test_engine(ctl, reg);
  auto stream = engine->submit(sampled(3, 60));
  CHECK(eventually([&] {
    return has(reg, "tessera:num_requests_running 1\n") &&
           has(reg, "tessera:num_sequences_running 3\n");
  }));
  stream->cancel();
  CHECK(eventually([&] { return has(reg, "tessera:num_requests_running 0\n"); }));
}

TEST_CASE("success counts only stop/length; errors and aborts go to request_finished_total",
          "[engine][metrics]") {
  metrics::Registry reg;
  auto ctl = std::make_shared<ExecutorControl>();
  ctl->script = [](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{1}; };
  ctl->poison = CharTokenizer::id_of('z');
  auto engine = make_test_engine(ctl, reg);
  CHECK(collect(*engine->submit(sampled(2, 3)), 2)[0].finish == FinishReason::kLength);
  GenerationRequest bad = sampled(1, 3);
  bad.prompt = CharTokenizer().encode("zz", false, false);
  CHECK(collect(*engine->submit(bad), 1)[0].finish == FinishReason::kError);
  CHECK(eventually(
      [&] { return has(reg, "tessera:request_finished_total{finished_reason=\"error\"} 1"); }));
  // One n = 2 request is one success.
  CHECK(has(reg, "tessera:request_success_total{finished_reason=\"length\"} 1"));
  CHECK(has(reg, "tessera:request_finished_total{finished_reason=\"length\"} 1"));
  CHECK_FALSE(has(reg, "tessera:request_success_total{finished_reason=\"error\"}"));
}

TEST_CASE("n above max_num_seqs: every choice finishes, at most max_num_seqs run",
          "[engine][fork]") {
  metrics::Registry reg;
  auto ctl = std::make_shared<ExecutorControl>();
  ctl->script = [](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{-1}; };
  for (int block_size : {4, 16}) {
    for (int max_tokens : {6, 12, 20}) {
      TestEngineOptions o;
      o.max_num_seqs = 4;
      o.block_size = block_size;
      o.num_blocks = 90;
      auto engine = make_test_engine(ctl, reg, o);
      GenerationRequest req = sampled(8, max_tokens);
      req.prompt.resize(4);
      auto res = collect(*engine->submit(req), 8, std::chrono::seconds(10));
      INFO("block " << block_size << " max_tokens " << max_tokens);
      for (const auto& r : res) {
        CHECK(r.finish == FinishReason::kLength);
        CHECK(r.tokens.size() == static_cast<size_t>(max_tokens));
      }
      CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
    }
  }
  CHECK(ctl->plan_errors == 0);
}
