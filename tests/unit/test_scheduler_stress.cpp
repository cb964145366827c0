// Randomized stress: thousands of submits, aborts, forks and steps on a tight KV pool under
// every policy, with all invariants checked around every step.
#include <random>

#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

TEST_CASE("random submits, aborts, forks and steps keep every invariant", "[scheduler][stress]") {
  for (PolicyKind policy : {PolicyKind::kContinuous, PolicyKind::kDynamic, PolicyKind::kStatic}) {
    INFO("policy " << policy_kind_name(policy));
    std::mt19937 rng(42 + static_cast<int>(policy));
    SchedulerConfig c = make_config(policy, 24, 4);  // 96 tokens of KV
    c.max_num_seqs = 6;
    c.max_num_batched_tokens = 24;
    c.max_waiting = 20;
    c.static_batch_size = 3;
    c.static_flush_timeout = milliseconds(5);
    c.dynamic_max_queue_delay = milliseconds(3);
    c.priority_aging_interval = milliseconds(rng() % 2 ? 50 : 0);
    Sim sim(c);
    const std::vector<int32_t> shared = distinct_prompt(999, 12);
    SeqId next_id = 1;
    int rejected = 0, aborted = 0, forks = 0;
    for (int iter = 0; iter < 3000; ++iter) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 3) {
        const int len = 1 + static_cast<int>(rng() % 30);
        std::vector<int32_t> prompt =
            rng() % 2 ? std::vector<int32_t>(shared.begin(), shared.begin() + std::min(len, 12))
                      : std::vector<int32_t>{};
        for (int i = static_cast<int>(prompt.size()); i < len; ++i) {
          prompt.push_back(static_cast<int32_t>(rng() % 100));
        }
        std::optional<TimePoint> deadline;
        if (rng() % 8 == 0) deadline = sim.now + milliseconds(rng() % 40);
        const SubmitResult r =
            sim.submit_prompt(next_id++, prompt, 1 + static_cast<int>(rng() % 20),
                              static_cast<int>(rng() % 3), deadline);
        if (!r.ok()) ++rejected;
      } else if (op < 4 && sim.sched.has_work()) {
        auto ids = sim.sched.running_ids();
        auto waiting = sim.sched.waiting_ids();
        ids.insert(ids.end(), waiting.begin(), waiting.end());
        if (sim.sched.abort(ids[rng() % ids.size()])) ++aborted;
      } else if (op < 5) {
        // Fork a running sequence that has just sampled.
        for (SeqId id : sim.sched.running_ids()) {
          const auto info = sim.sched.info(id);
          if (info->num_computed == info->num_tokens - 1 && info->num_computed > 0) {
            sim.sched.fork(id, next_id, static_cast<int32_t>(rng() % 100));
            sim.max_new_of[next_id] = sim.max_new_of[id];
            ++next_id;
            ++forks;
            break;
          }
        }
        sim.sched.check_invariants();
      } else {
        sim.step(milliseconds(rng() % 3));
      }
      const KvStats s = sim.sched.kv().stats();
      REQUIRE(s.num_used + s.num_free == s.num_total);
    }
    // Drain: everything left finishes (no deadlock, no starvation).
    for (int i = 0; i < 5000 && sim.sched.has_work(); ++i) sim.step(milliseconds(1));
    INFO(policy_kind_name(policy) << ": finished " << sim.finished.size() << " failed "
                                  << sim.failed.size() << " rejected " << rejected << " aborted "
                                  << aborted << " forks " << forks << " preemptions "
                                  << sim.sched.stats().num_preemptions << " prefix hits "
                                  << sim.sched.kv().stats().prefix_hit_tokens << " steps "
                                  << sim.sched.stats().num_steps);
    CHECK_FALSE(sim.sched.has_work());
    CHECK(sim.sched.kv().stats().num_used == 0);
    sim.sched.check_invariants();
    CHECK(sim.finished.size() > 100);
    CHECK(forks > 0);
    CHECK(aborted > 0);
    if (policy == PolicyKind::kContinuous) {
      CHECK(sim.sched.stats().num_preemptions > 0);
      CHECK(sim.sched.kv().stats().prefix_hit_tokens > 0);
    }
  }
}
