// EngineImpl driven by a scripted executor (no model): stops, streaming, cancellation,
// queue bounds, failing steps, n > 1 forks, deadlines, stats.
#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "engine_test_support.h"

using namespace tessera;
using namespace tessera::test;

namespace {

// Spells `text` one character per token, then EOS.
Script spell(const std::string& text) {
  return [text](std::span<const int32_t>, std::span<const int32_t> output) -> int32_t {
    if (output.size() < text.size()) return CharTokenizer::id_of(text[output.size()]);
    return CharTokenizer::kEos;
  };
}

GenerationRequest greedy(const std::string& prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = CharTokenizer().encode(prompt, false, false);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  return r;
}

std::shared_ptr<ExecutorControl> control_with(Script s) {
  auto c = std::make_shared<ExecutorControl>();
  c->script = std::move(s);
  return c;
}

bool kv_empty(const Engine& e) {
  return e.stats().kv_blocks_used == 0;
}

}  // namespace

TEST_CASE("engine streams greedy text until EOS, text not including EOS", "[engine]") {
  metrics::Registry reg;
  auto ctl = control_with(spell("hello world"));
  auto engine = make_test_engine(ctl, reg);
  auto stream = engine->submit(greedy("abc", 50));
  auto res = collect(*stream, 1);
  REQUIRE(res[0].finish == FinishReason::kStop);
  CHECK(res[0].text == "hello world");
  CHECK(res[0].tokens.size() == 12);  // 11 characters + EOS
  CHECK(res[0].tokens.back() == CharTokenizer::kEos);
  CHECK(res[0].completion_tokens == 12);
  CHECK(res[0].prompt_tokens == 3);
  CHECK(res[0].num_events == 12);  // one event per token
  CHECK(ctl->plan_errors == 0);
  CHECK(eventually([&] { return kv_empty(*engine); }));
  CHECK(engine->ready());
  CHECK(reg.render().find("tessera:request_success_total{finished_reason=\"stop\"} 1") !=
        std::string::npos);
}

TEST_CASE("max_tokens ends with length; ignore_eos runs past EOS", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("hi")), reg);
  auto r1 = collect(*engine->submit(greedy("x", 2)), 1);
  CHECK(r1[0].finish == FinishReason::kLength);
  CHECK(r1[0].text == "hi");
  auto req = greedy("x", 5);
  req.sampling.ignore_eos = true;
  auto r2 = collect(*engine->submit(req), 1);
  CHECK(r2[0].finish == FinishReason::kLength);
  CHECK(r2[0].tokens.size() == 5);
  // skip_special_tokens (default) hides the EOS text that ignore_eos let through.
  CHECK(r2[0].text == "hi");
}

TEST_CASE("end-of-turn ids and stop_token_ids stop generation", "[engine]") {
  metrics::Registry reg;
  auto ctl = control_with([](std::span<const int32_t>, std::span<const int32_t> out) {
    return out.size() < 2 ? int32_t{7} : CharTokenizer::kImEnd;
  });
  auto engine = make_test_engine(ctl, reg);
  auto r1 = collect(*engine->submit(greedy("q", 10)), 1);
  CHECK(r1[0].finish == FinishReason::kStop);
  CHECK(r1[0].text == "hh");
  auto req = greedy("q", 10);
  req.sampling.stop_token_ids = {7};
  auto r2 = collect(*engine->submit(req), 1);
  CHECK(r2[0].finish == FinishReason::kStop);
  CHECK(r2[0].tokens == std::vector<int32_t>{7});
  CHECK(r2[0].text.empty());
}

TEST_CASE("a stop string split across tokens is cut and never streamed", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("one two\n\nthree")), reg);
  auto req = greedy("p", 40);
  req.sampling.stop = {"\n\n", "zzz"};
  auto stream = engine->submit(req);
  std::string streamed;
  std::optional<FinishReason> finish;
  while (!stream->done()) {
    auto ev = stream->next(std::chrono::milliseconds(100));
    if (!ev) continue;
    streamed += ev->text;
    CHECK(ev->text.find('\n') == std::string::npos);
    if (ev->finish) finish = ev->finish;
  }
  CHECK(finish == FinishReason::kStop);
  CHECK(streamed == "one two");
}

TEST_CASE("held-back text is released when it stops matching", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("ab\nc")), reg);
  auto req = greedy("p", 40);
  req.sampling.stop = {"\n\n"};
  auto res = collect(*engine->submit(req), 1);
  CHECK(res[0].text == "ab\nc");
  CHECK(res[0].finish == FinishReason::kStop);  // by EOS
}

TEST_CASE("a multi-byte character split across tokens streams once, whole", "[engine]") {
  metrics::Registry reg;
  auto ctl = control_with([](std::span<const int32_t>, std::span<const int32_t> out) {
    const int32_t seq[] = {CharTokenizer::kEAcute1, CharTokenizer::kEAcute2, 19};
    return out.size() < 3 ? seq[out.size()] : CharTokenizer::kEos;
  });
  auto engine = make_test_engine(ctl, reg);
  auto stream = engine->submit(greedy("p", 10));
  std::vector<std::string> deltas;
  while (!stream->done()) {
    auto ev = stream->next(std::chrono::milliseconds(100));
    if (ev) deltas.push_back(ev->text);
  }
  REQUIRE(deltas.size() == 4);
  CHECK(deltas[0].empty());
  CHECK(deltas[1] == "\xC3\xA9");
  CHECK(deltas[2] == "t");
}

TEST_CASE("cancel frees the request's KV blocks within a step", "[engine]") {
  metrics::Registry reg;
  auto ctl =
      control_with([](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{0}; });
  ctl->step_sleep_ms = 2;
  auto engine = make_test_engine(ctl, reg);
  auto req = greedy("abcdefghij", 150);
  auto stream = engine->submit(req);
  REQUIRE(stream->next(std::chrono::seconds(5)).has_value());
  // Stats are published after each step: the first event can arrive just before them.
  CHECK(eventually([&] { return engine->stats().kv_blocks_used > 0; }));
  stream->cancel();
  auto res = collect(*stream, 1);
  CHECK(res[0].finish == FinishReason::kCancelled);
  CHECK(eventually([&] { return kv_empty(*engine); }));
  CHECK(engine->stats().running == 0);
}

TEST_CASE("dropping the stream cancels the request", "[engine]") {
  metrics::Registry reg;
  auto ctl =
      control_with([](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{1}; });
  ctl->step_sleep_ms = 2;
  auto engine = make_test_engine(ctl, reg);
  {
    auto stream = engine->submit(greedy("abcdefgh", 150));
    REQUIRE(stream->next(std::chrono::seconds(5)).has_value());
  }
  CHECK(eventually([&] {
    return kv_empty(*engine) &&
           reg.render().find("tessera:request_finished_total{finished_reason=\"abort\"} 1") !=
               std::string::npos;
  }));
}

TEST_CASE("a full waiting queue rejects submit with kResourceExhausted", "[engine]") {
  metrics::Registry reg;
  auto ctl = control_with(spell("x"));
  ctl->set_blocked(true);
  TestEngineOptions o;
  o.max_waiting = 2;
  o.max_num_seqs = 1;
  auto engine = make_test_engine(ctl, reg, o);
  std::vector<std::shared_ptr<ResultStream>> streams;
  streams.push_back(engine->submit(greedy("ab", 4)));
  // The first request is inside execute() (blocked): it runs, nothing waits.
  REQUIRE(eventually([&] { return ctl->entered.load() == 1; }));
  int rejected = 0;
  for (int i = 0; i < 5; ++i) {
    try {
      streams.push_back(engine->submit(greedy("ab", 4)));
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kResourceExhausted);
      ++rejected;
    }
  }
  CHECK(rejected == 3);
  CHECK(streams.size() == 3);
  ctl->set_blocked(false);
  for (auto& s : streams) CHECK(collect(*s, 1)[0].finish == FinishReason::kStop);
}

TEST_CASE("a failing step fails only its requests; the loop keeps serving", "[engine]") {
  metrics::Registry reg;
  auto ctl = control_with(spell("ok"));
  ctl->poison = CharTokenizer::id_of('z');
  auto engine = make_test_engine(ctl, reg);
  auto bad = collect(*engine->submit(greedy("zzz", 5)), 1);
  CHECK(bad[0].finish == FinishReason::kError);
  CHECK(bad[0].error.find("poisoned") != std::string::npos);
  auto good = collect(*engine->submit(greedy("abc", 5)), 1);
  CHECK(good[0].finish == FinishReason::kStop);
  CHECK(good[0].text == "ok");
  CHECK(eventually([&] { return kv_empty(*engine); }));
}

TEST_CASE("n > 1 forks after prefill; seeded choices are reproducible", "[engine]") {
  metrics::Registry reg;
  // Uniform logits: every choice samples from its own seed.
  auto ctl =
      control_with([](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{-1}; });
  auto engine = make_test_engine(ctl, reg);
  auto req = greedy("abcdefghijk", 6);
  req.sampling.temperature = 1.0f;
  req.sampling.ignore_eos = true;
  req.sampling.n = 3;
  req.sampling.seed = 42;
  auto a = collect(*engine->submit(req), 3);
  auto b = collect(*engine->submit(req), 3);
  for (int i = 0; i < 3; ++i) {
    INFO("choice " << i);
    CHECK(a[i].finish == FinishReason::kLength);
    CHECK(a[i].tokens.size() == 6);
    CHECK(a[i].tokens == b[i].tokens);
  }
  CHECK(a[0].tokens != a[1].tokens);
  CHECK(a[1].tokens != a[2].tokens);
  // Choice i uses seed + i: the same as n = 1 with that seed.
  auto single = req;
  single.sampling.n = 1;
  single.sampling.seed = 43;
  CHECK(collect(*engine->submit(single), 1)[0].tokens == a[1].tokens);
  CHECK(ctl->plan_errors == 0);
  CHECK(eventually([&] { return kv_empty(*engine); }));
}

TEST_CASE("logprobs ride along with their tokens", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("ab")), reg);
  auto req = greedy("x", 2);
  req.sampling.logprobs = 2;
  auto res = collect(*engine->submit(req), 1);
  REQUIRE(res[0].logprobs.size() == 2);
  CHECK(res[0].logprobs[0].token == 0);
  CHECK(res[0].logprobs[0].logprob > -0.001f);
  CHECK(res[0].logprobs[0].top.size() == 2);
}

TEST_CASE("a deadline ends a request that runs too long", "[engine]") {
  metrics::Registry reg;
  auto ctl =
      control_with([](std::span<const int32_t>, std::span<const int32_t>) { return int32_t{2}; });
  ctl->step_sleep_ms = 5;
  auto engine = make_test_engine(ctl, reg);
  auto req = greedy("abc", 150);
  req.deadline = Clock::now() + std::chrono::milliseconds(60);
  auto res = collect(*engine->submit(req), 1);
  CHECK(res[0].finish == FinishReason::kDeadline);
  CHECK(res[0].tokens.size() < 150);
  CHECK(eventually([&] { return kv_empty(*engine); }));
}

TEST_CASE("submit rejects bad requests naming the field", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("x")), reg);
  auto expect_invalid = [&](GenerationRequest r, const std::string& field) {
    try {
      engine->submit(std::move(r));
      FAIL("accepted a bad " << field);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kInvalidArgument);
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  auto base = greedy("abc", 4);
  auto r = base;
  r.prompt.clear();
  expect_invalid(r, "prompt");
  r = base;
  r.prompt = {1, 64};
  expect_invalid(r, "prompt");
  r = base;
  r.sampling.max_tokens = 0;
  expect_invalid(r, "max_tokens");
  r = base;
  r.sampling.max_tokens = 198;  // 3 + 198 > 200
  expect_invalid(r, "max_tokens");
  r = base;
  r.sampling.top_p = 0.0f;
  expect_invalid(r, "top_p");
  r = base;
  r.sampling.temperature = -1.0f;
  expect_invalid(r, "temperature");
  r = base;
  r.sampling.n = 1025;  // above max_num_seqs is fine (forks wait); above 1024 is not
  expect_invalid(r, "n");
  r = base;
  r.sampling.logprobs = 21;
  expect_invalid(r, "logprobs");
  r = base;
  r.sampling.stop = {""};
  expect_invalid(r, "stop");
  r = base;
  r.sampling.presence_penalty = 3.0f;
  expect_invalid(r, "presence_penalty");
}

TEST_CASE("an idle engine keeps ticking so /health sees progress", "[engine]") {
  metrics::Registry reg;
  auto engine = make_test_engine(control_with(spell("x")), reg);
  REQUIRE(eventually([&] { return engine->ready(); }));
  const auto t0 = engine->stats().last_step_end;
  CHECK(eventually([&] { return engine->stats().last_step_end > t0; },
                   std::chrono::milliseconds(1000)));
  engine->stop();
  CHECK_THROWS_AS(engine->submit(greedy("a", 1)), Error);
}

TEST_CASE("every batching policy serves a burst", "[engine]") {
  for (PolicyKind policy : {PolicyKind::kStatic, PolicyKind::kDynamic, PolicyKind::kContinuous}) {
    INFO("policy " << policy_kind_name(policy));
    metrics::Registry reg;
    TestEngineOptions o;
    o.policy = policy;
    o.max_num_seqs = 4;
    auto engine = make_test_engine(control_with(spell("burst ok")), reg, o);
    std::vector<std::shared_ptr<ResultStream>> streams;
    for (int i = 0; i < 9; ++i) streams.push_back(engine->submit(greedy("req", 20)));
    for (auto& s : streams) {
      auto res = collect(*s, 1);
      CHECK(res[0].finish == FinishReason::kStop);
      CHECK(res[0].text == "burst ok");
    }
    CHECK(eventually([&] { return kv_empty(*engine); }));
  }
}

TEST_CASE("preemption under KV pressure recomputes and returns the same output", "[engine]") {
  metrics::Registry reg;
  // The next letter depends on the whole known sequence, so a recompute that lost or
  // reordered a token would change everything after it.
  Script script = [](std::span<const int32_t> prompt, std::span<const int32_t> out) {
    uint64_t h = 7;  // unsigned: wraps instead of overflowing
    for (int32_t t : prompt) h = h * 31 + static_cast<uint64_t>(t);
    for (int32_t t : out) h = h * 31 + static_cast<uint64_t>(t);
    return static_cast<int32_t>(h % 26);
  };
  auto ctl = control_with(script);
  TestEngineOptions o;
  o.num_blocks = 9;  // 8 usable blocks of 4 tokens
  o.max_model_len = 32;
  o.max_num_seqs = 4;
  auto engine = make_test_engine(ctl, reg, o);
  const std::vector<std::string> prompts = {"abcdef", "ghijkl", "mnopqr", "stuvwx"};
  std::vector<std::shared_ptr<ResultStream>> streams;
  for (const auto& p : prompts) {
    auto req = greedy(p, 14);  // 20 tokens = 5 blocks each; 4 of them need 20 > 8
    req.sampling.ignore_eos = true;
    streams.push_back(engine->submit(req));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto prompt = CharTokenizer().encode(prompts[i], false, false);
    std::vector<int32_t> want;
    while (want.size() < 14) want.push_back(script(prompt, want));
    auto res = collect(*streams[i], 1);
    INFO("prompt " << prompts[i]);
    CHECK(res[0].finish == FinishReason::kLength);
    CHECK(res[0].tokens == want);
  }
  CHECK(engine->stats().preemptions_total > 0);
  CHECK(ctl->plan_errors == 0);
  CHECK(eventually([&] { return kv_empty(*engine); }));
}
