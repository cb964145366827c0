// n > 1: forks count against max_num_seqs (a request reserves its siblings at admission).
#include "common/error.h"
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

// Submits `id` as a request with `n` choices.
SubmitResult submit_n(Sim& sim, SeqId id, int prompt_len, int max_new, int n) {
  SequenceSpec spec;
  spec.id = id;
  spec.prompt = distinct_prompt(id, prompt_len);
  spec.max_new_tokens = max_new;
  spec.arrival = sim.now;
  spec.num_seqs = n;
  SubmitResult r = sim.sched.submit(std::move(spec));
  if (r.ok()) sim.max_new_of[id] = max_new;
  return r;
}

// Steps like an engine that forks every parent with reserved siblings after its first token.
void step_and_fork(Sim& sim, SeqId& next_id, int& max_running) {
  StepPlan plan = sim.step();
  for (const ScheduledSeq& s : plan.seqs) {
    if (!s.sample || !sim.sched.info(s.id)) continue;
    while (sim.sched.info(s.id)->reserved_seqs > 1) {
      const SeqId child = next_id++;
      sim.sched.fork(s.id, child, 4242);
      sim.max_new_of[child] = sim.max_new_of[s.id];
    }
  }
  sim.sched.check_invariants();
  max_running = std::max(max_running, sim.sched.num_running());
}

}  // namespace

TEST_CASE("n > 1 forks never push the running count past max_num_seqs", "[scheduler][fork]") {
  for (PolicyKind policy : {PolicyKind::kContinuous, PolicyKind::kDynamic, PolicyKind::kStatic}) {
    SchedulerConfig cfg = make_config(policy, 400, 16);
    cfg.max_num_seqs = 8;
    cfg.max_num_batched_tokens = 4096;
    cfg.static_flush_timeout = milliseconds(0);
    cfg.dynamic_max_queue_delay = milliseconds(0);
    Sim sim(cfg);
    // The report: 8 requests with n = 8 and max_num_seqs = 8 ran 64 sequences in one step.
    for (SeqId id = 1; id <= 8; ++id) REQUIRE(submit_n(sim, id, 5, 4, 8).ok());
    SeqId next_id = 1000;
    int max_running = 0;
    for (int i = 0; i < 200 && sim.sched.has_work(); ++i) step_and_fork(sim, next_id, max_running);
    INFO("policy " << policy_kind_name(policy));
    CHECK_FALSE(sim.sched.has_work());
    CHECK(max_running == 8);
    CHECK(sim.finished.size() == 64);  // every choice of every request ran
    CHECK(sim.sched.kv().stats().num_used == 0);
  }
}

TEST_CASE("a request's reserved siblings keep smaller ones waiting", "[scheduler][fork]") {
  SchedulerConfig cfg = make_config(PolicyKind::kContinuous, 400, 16);
  cfg.max_num_seqs = 4;
  Sim sim(cfg);
  REQUIRE(submit_n(sim, 1, 5, 8, 3).ok());
  REQUIRE(sim.submit(2, 5, 8).ok());
  REQUIRE(sim.submit(3, 5, 8).ok());
  sim.step();
  // 1 reserves 3 slots, 2 takes the fourth; 3 waits.
  CHECK(sim.running() == std::set<SeqId>{1, 2});
  CHECK(sim.sched.num_running_slots() == 4);
  sim.sched.fork(1, 10, 7);
  sim.sched.fork(1, 11, 7);
  CHECK(sim.sched.num_running() == 4);
  CHECK(sim.sched.info(1)->reserved_seqs == 1);
  // No reservation left and no free slot: a further fork waits for one.
  CHECK_FALSE(sim.sched.fork(1, 12, 7));
  CHECK(sim.waiting().count(12));
  CHECK(sim.sched.num_running() == 4);
  sim.sched.check_invariants();
}

TEST_CASE("a parent that ends before forking gives its reserved slots back", "[scheduler][fork]") {
  SchedulerConfig cfg = make_config(PolicyKind::kContinuous, 400, 16);
  cfg.max_num_seqs = 4;
  Sim sim(cfg);
  REQUIRE(submit_n(sim, 1, 5, 8, 4).ok());
  REQUIRE(sim.submit(2, 5, 8).ok());
  sim.step();
  CHECK(sim.running() == std::set<SeqId>{1});
  REQUIRE(sim.sched.abort(1));
  sim.step();
  CHECK(sim.running() == std::set<SeqId>{2});
}

TEST_CASE("n above max_num_seqs runs max_num_seqs at a time; the rest wait and finish",
          "[scheduler][fork]") {
  for (PolicyKind policy : {PolicyKind::kContinuous, PolicyKind::kDynamic, PolicyKind::kStatic}) {
    SchedulerConfig cfg = make_config(PolicyKind::kContinuous, 400, 4);
    cfg.policy = policy;
    cfg.max_num_seqs = 4;
    cfg.static_flush_timeout = milliseconds(0);
    cfg.dynamic_max_queue_delay = milliseconds(0);
    Sim sim(cfg);
    REQUIRE(submit_n(sim, 1, 10, 6, 8).ok());
    CHECK(sim.sched.info(1)->reserved_seqs == 4);
    SeqId next_id = 100;
    int max_running = 0;
    for (int i = 0; i < 200 && sim.sched.has_work(); ++i) {
      StepPlan plan = sim.step();
      for (const ScheduledSeq& s : plan.seqs) {
        if (s.id != 1 || !s.sample || !sim.sched.info(1) || next_id > 100) continue;
        for (int k = 1; k < 8; ++k) {  // the engine forks n - 1 siblings at once
          sim.sched.fork(1, next_id, 4242);
          sim.max_new_of[next_id++] = 6;
        }
      }
      sim.sched.check_invariants();
      max_running = std::max(max_running, sim.sched.num_running());
    }
    INFO("policy " << policy_kind_name(policy));
    CHECK(max_running == 4);
    CHECK(sim.finished.size() == 8);
    for (const auto& [id, tokens] : sim.finished) CHECK(tokens.size() == 16);
    CHECK(sim.sched.kv().stats().num_used == 0);
  }
  SchedulerConfig cfg = make_config(PolicyKind::kContinuous, 400, 16);
  Sim sim(cfg);
  CHECK(submit_n(sim, 2, 5, 8, 0).status == SubmitStatus::kInvalid);
}

TEST_CASE("deferred forks with a 16-token block and a short prompt", "[scheduler][fork]") {
  for (int max_new : {6, 12, 24}) {
    SchedulerConfig cfg = make_config(PolicyKind::kContinuous, 89, 16);
    cfg.max_num_seqs = 4;
    Sim sim(cfg);
    REQUIRE(submit_n(sim, 1, 4, max_new, 8).ok());
    SeqId next_id = 100;
    for (int i = 0; i < 300 && sim.sched.has_work(); ++i) {
      StepPlan plan = sim.step();
      for (const ScheduledSeq& s : plan.seqs) {
        if (s.id != 1 || !s.sample || !sim.sched.info(1) || next_id > 100) continue;
        for (int k = 1; k < 8; ++k) {
          sim.sched.fork(1, next_id, 4242);
          sim.max_new_of[next_id++] = max_new;
        }
      }
    }
    INFO("max_new " << max_new);
    CHECK(sim.finished.size() == 8);
  }
}
