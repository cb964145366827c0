// Planner cost at serving scale. Hidden (tag [.]): run explicitly with
//   tessera_unit_tests "[scheduler-perf]"
// It reports timings (WARN) and asserts only behaviour, never speed.
#include <algorithm>
#include <chrono>

#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

TEST_CASE("scheduler cost per step at 256 decoding sequences", "[.][scheduler-perf]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 40000, 16);  // 640k tokens
  c.max_num_seqs = 256;
  c.max_num_batched_tokens = 8192;
  Sim sim(c);
  for (SeqId id = 1; id <= 256; ++id) REQUIRE(sim.submit(id, 2000, 100000).ok());
  // Prefill everything (not timed), then time decode steps without the Sim's checks.
  while (sim.sched.num_waiting() > 0 || sim.sched.info(256)->num_computed < 2000) sim.step();
  std::vector<double> schedule_us, update_us;
  std::vector<SampledToken> sampled;
  for (int i = 0; i < 200; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    StepPlan plan = sim.sched.schedule(sim.now);
    const auto t1 = std::chrono::steady_clock::now();
    REQUIRE(plan.seqs.size() == 256);
    sampled.clear();
    for (const ScheduledSeq& s : plan.seqs) sampled.push_back({s.id, fake_token(s.id, s.end)});
    sim.sched.update(plan, sampled);
    const auto t2 = std::chrono::steady_clock::now();
    schedule_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    update_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
  }
  sim.sched.check_invariants();
  WARN("256 seqs x ~2000-token context, block 16: schedule() median "
       << median_us(schedule_us) << " us, update() median " << median_us(update_us) << " us");
}

TEST_CASE("scheduler cost with admission churn and prefix hits", "[.][scheduler-perf]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 20000, 16);
  c.max_num_seqs = 128;
  c.max_num_batched_tokens = 4096;
  Sim sim(c);
  const auto shared = distinct_prompt(1, 1024);
  SeqId next = 1;
  std::vector<double> step_us;
  for (int i = 0; i < 400; ++i) {
    for (int k = 0; k < 4; ++k) {
      auto prompt = shared;
      for (int j = 0; j < 64; ++j) prompt.push_back(static_cast<int32_t>(next * 100 + j));
      REQUIRE(sim.submit_prompt(next++, prompt, 32).ok());
    }
    const auto t0 = std::chrono::steady_clock::now();
    sim.step();  // includes the harness's invariant checks
    step_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  const KvStats s = sim.sched.kv().stats();
  CHECK(s.prefix_hit_tokens > 0);
  WARN("churn (4 arrivals/step, 1024-token shared prefix): step incl. invariant checks median "
       << median_us(step_us) << " us; prefix hit rate "
       << double(s.prefix_hit_tokens) / double(s.prefix_query_tokens));
}
