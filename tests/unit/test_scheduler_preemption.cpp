// Preemption by recompute, priorities, aging, deadlines (EDF), queue bounds, admission
// errors, and sequences that can never fit.
#include "common/error.h"
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

std::set<SeqId> as_set(const std::vector<SeqId>& v) {
  return {v.begin(), v.end()};
}

std::vector<SeqId> scheduled_ids(const StepPlan& p) {
  std::vector<SeqId> ids;
  for (const auto& s : p.seqs) ids.push_back(s.id);
  return ids;
}

}  // namespace

TEST_CASE("preemption takes the lowest priority, then the latest arrival",
          "[scheduler][preemption]") {
  // Three 8-token prompts fill all 6 blocks; each decode then needs a third block.
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 6);
  c.max_num_batched_tokens = 64;
  Sim sim(c);
  REQUIRE(sim.submit(1, 8, 16, /*priority=*/0).ok());
  sim.now += milliseconds(1);
  REQUIRE(sim.submit(2, 8, 16, /*priority=*/1).ok());
  sim.now += milliseconds(1);
  REQUIRE(sim.submit(3, 8, 16, /*priority=*/0).ok());
  StepPlan p = sim.step();
  CHECK(p.seqs.size() == 3);
  CHECK(sim.sched.kv().stats().num_free == 0);

  // 2 (priority 1) asks first and takes 3's blocks (priority 0, newest); 1 uses the other.
  p = sim.step();
  CHECK(p.preempted == std::vector<SeqId>{3});
  CHECK(as_set(scheduled_ids(p)) == std::set<SeqId>{1, 2});
  CHECK(sim.running() == std::set<SeqId>{1, 2});
  CHECK(sim.waiting() == std::set<SeqId>{3});
  CHECK(sim.sched.info(3)->num_preemptions == 1);
  CHECK(sim.sched.info(3)->num_blocks == 0);
  CHECK(sim.sched.info(3)->num_tokens == 9);  // its generated token is kept
  CHECK(sim.sched.stats().num_preemptions == 1);

  // Positions 9..11 fit the third blocks; at position 12 both need a fourth: 2 takes 1's.
  sim.step();
  sim.step();
  sim.step();
  p = sim.step();
  CHECK(p.preempted == std::vector<SeqId>{1});
  CHECK(scheduled_ids(p) == std::vector<SeqId>{2});
}

TEST_CASE("a preempted sequence resumes with its tokens and produces the same output",
          "[scheduler][preemption]") {
  auto run = [](int usable_blocks, int64_t* preemptions) {
    SchedulerConfig c = make_config(PolicyKind::kContinuous, usable_blocks);
    c.max_num_batched_tokens = 32;
    Sim sim(c);
    for (SeqId id = 1; id <= 8; ++id) {
      REQUIRE(sim.submit(id, 5 + static_cast<int>(id) * 3, 12, static_cast<int>(id % 3)).ok());
      sim.now += milliseconds(1);
    }
    for (int i = 0; i < 500 && sim.sched.has_work(); ++i) {
      StepPlan p = sim.step();
      for (const ScheduledSeq& s : p.seqs) {
        const auto info = sim.sched.info(s.id);
        // A resumed sequence recomputes prompt + generated tokens (minus any cached prefix).
        if (info && info->num_preemptions > 0 && s.is_prefill) {
          CHECK(s.end <= info->num_tokens);
        }
      }
    }
    CHECK_FALSE(sim.sched.has_work());
    *preemptions = sim.sched.stats().num_preemptions;
    CHECK(sim.sched.kv().stats().num_used == 0);
    return sim.finished;
  };
  int64_t roomy_preemptions = 0, tight_preemptions = 0;
  const auto roomy = run(200, &roomy_preemptions);
  const auto tight = run(12, &tight_preemptions);  // 48 tokens for 8 sequences of ~30
  CHECK(roomy_preemptions == 0);
  CHECK(tight_preemptions > 0);
  REQUIRE(roomy.size() == 8);
  CHECK(tight == roomy);
}

TEST_CASE("higher priority is admitted first; FIFO within a priority", "[scheduler][priority]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_num_seqs = 1;
  Sim sim(c);
  REQUIRE(sim.submit(1, 4, 1, 0).ok());
  REQUIRE(sim.submit(2, 4, 1, 0).ok());
  REQUIRE(sim.submit(3, 4, 1, 7).ok());
  REQUIRE(sim.submit(4, 4, 1, -2).ok());
  REQUIRE(sim.submit(5, 4, 1, 7).ok());
  std::vector<SeqId> order;
  for (int i = 0; i < 5; ++i) {
    for (SeqId id : scheduled_ids(sim.step())) order.push_back(id);
  }
  CHECK(order == std::vector<SeqId>{3, 5, 1, 2, 4});
}

TEST_CASE("aging lets a long-waiting low priority overtake", "[scheduler][priority]") {
  for (int aging_ms : {0, 10}) {
    SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
    c.max_num_seqs = 1;
    c.priority_aging_interval = milliseconds(aging_ms);
    Sim sim(c);
    REQUIRE(sim.submit(1, 4, 1, 0).ok());
    sim.now += milliseconds(100);  // 10 intervals: effective priority 10 with aging
    REQUIRE(sim.submit(2, 4, 1, 5).ok());
    const SeqId first = scheduled_ids(sim.step()).at(0);
    CHECK(first == (aging_ms ? 1 : 2));
  }
}

TEST_CASE("earliest deadline first within a priority; expired sequences fail",
          "[scheduler][deadline]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_num_seqs = 1;
  Sim sim(c);
  const TimePoint t0 = sim.now;
  REQUIRE(sim.submit(1, 4, 1, 0).ok());  // no deadline
  REQUIRE(sim.submit(2, 4, 1, 0, t0 + milliseconds(100)).ok());
  REQUIRE(sim.submit(3, 4, 1, 0, t0 + milliseconds(50)).ok());
  REQUIRE(sim.submit(4, 4, 1, 1, t0 + milliseconds(500)).ok());  // priority beats deadline
  std::vector<SeqId> order;
  for (int i = 0; i < 4; ++i) {
    for (SeqId id : scheduled_ids(sim.step())) order.push_back(id);
  }
  CHECK(order == std::vector<SeqId>{4, 3, 2, 1});

  // A long job holds the only slot; a queued request's deadline passes while it waits,
  // and a running request's deadline passes mid-generation.
  REQUIRE(sim.submit(10, 4, 100).ok());
  sim.step();
  REQUIRE(sim.submit(11, 4, 1, 0, sim.now + milliseconds(3)).ok());
  StepPlan p;
  for (int i = 0; i < 5; ++i) {
    p = sim.step();
    if (!p.failed.empty()) break;
  }
  REQUIRE(p.failed.size() == 1);
  CHECK(p.failed[0].id == 11);
  CHECK(p.failed[0].reason == FailReason::kDeadline);
  CHECK_THAT(p.failed[0].message, Catch::Contains("waiting"));
  CHECK_FALSE(sim.sched.info(11));

  sim.sched.abort(10);
  REQUIRE(sim.submit(12, 4, 100, 0, sim.now + milliseconds(4)).ok());
  for (int i = 0; i < 8 && !sim.failed.count(12); ++i) sim.step();
  REQUIRE(sim.failed.count(12));
  CHECK(sim.failed[12] == FailReason::kDeadline);
  CHECK(sim.sched.kv().stats().num_used == 0);
}

TEST_CASE("the waiting queue is bounded", "[scheduler][admission]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_waiting = 2;
  c.max_num_seqs = 1;
  Sim sim(c);
  REQUIRE(sim.submit(1, 4, 5).ok());
  REQUIRE(sim.submit(2, 4, 5).ok());
  SubmitResult r = sim.submit(3, 4, 5);
  CHECK(r.status == SubmitStatus::kQueueFull);
  CHECK_THAT(r.message, Catch::Contains("full"));
  sim.step();  // 1 starts running: a waiting slot frees
  CHECK(sim.submit(3, 4, 5).ok());
  CHECK(sim.sched.stats().num_rejected == 1);
}

TEST_CASE("bad or oversized submissions are refused with a reason", "[scheduler][admission]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 10);  // 40 tokens
  c.max_model_len = 32;
  Sim sim(c);
  CHECK(sim.submit(1, 0, 5).status == SubmitStatus::kInvalid);
  CHECK(sim.submit(1, 4, -1).status == SubmitStatus::kInvalid);
  REQUIRE(sim.submit(1, 4, 5).ok());
  CHECK(sim.submit(1, 4, 5).status == SubmitStatus::kInvalid);  // duplicate id
  SubmitResult r = sim.submit(2, 32, 5);
  CHECK(r.status == SubmitStatus::kTooLong);
  CHECK_THAT(r.message, Catch::Contains("max_model_len"));
  CHECK(sim.submit(3, 31, 1).ok());  // 31 + 1 fits exactly

  SchedulerConfig c2 = make_config(PolicyKind::kContinuous, 10);
  Sim sim2(c2);
  r = sim2.submit(1, 30, 20);  // 49 tokens of KV > 40
  CHECK(r.status == SubmitStatus::kTooLong);
  CHECK_THAT(r.message, Catch::Contains("10"));
  CHECK(sim2.submit(2, 30, 11).ok());  // 40 tokens of KV: the last sampled one needs none

  SchedulerConfig bad = make_config(PolicyKind::kContinuous, 10);
  bad.max_num_batched_tokens = 0;
  CHECK_THROWS_AS(Scheduler(bad), Error);
}

TEST_CASE("a sequence that outgrows the whole cache fails instead of deadlocking",
          "[scheduler][preemption]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 3);  // 12 tokens
  Sim sim(c);
  REQUIRE(sim.submit(1, 8, 0).ok());  // max_new unknown to the scheduler
  sim.max_new_of[1] = 1000;
  for (int i = 0; i < 20 && !sim.failed.count(1); ++i) sim.step();
  REQUIRE(sim.failed.count(1));
  CHECK(sim.failed[1] == FailReason::kCannotFit);
  CHECK_FALSE(sim.sched.has_work());
  CHECK(sim.sched.kv().stats().num_used == 0);
}

TEST_CASE("aborting waiting and running sequences returns every block", "[scheduler][cancel]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 40);
  c.max_num_seqs = 3;
  Sim sim(c);
  for (SeqId id = 1; id <= 6; ++id) REQUIRE(sim.submit(id, 10, 50).ok());
  sim.step();
  sim.step();
  CHECK(sim.sched.num_running() == 3);
  CHECK(sim.sched.kv().stats().num_used > 0);
  for (SeqId id = 1; id <= 6; ++id) CHECK(sim.sched.abort(id));
  CHECK_FALSE(sim.sched.abort(1));
  CHECK_FALSE(sim.sched.has_work());
  CHECK(sim.sched.kv().stats().num_used == 0);
  sim.sched.check_invariants();
  StepPlan p = sim.sched.schedule(sim.now);
  CHECK(as_set(p.released) == std::set<SeqId>{1, 2, 3, 4, 5, 6});
  CHECK(p.empty());
}

TEST_CASE("update skips sequences aborted after schedule", "[scheduler][cancel]") {
  Sim sim(make_config(PolicyKind::kContinuous, 40));
  REQUIRE(sim.submit(1, 6, 5).ok());
  REQUIRE(sim.submit(2, 6, 5).ok());
  StepPlan p = sim.sched.schedule(sim.now);
  REQUIRE(p.seqs.size() == 2);
  sim.sched.abort(1);
  std::vector<SampledToken> out{{1, 5}, {2, 6}};
  sim.sched.update(p, out);
  sim.sched.check_invariants();
  CHECK(sim.sched.info(2)->num_tokens == 7);
  CHECK(sim.sched.info(2)->num_computed == 6);
  // A missing token for a sequence that should sample is an engine bug.
  p = sim.sched.schedule(sim.now);
  CHECK_THROWS_AS(sim.sched.update(p, {}), Error);
}

TEST_CASE("admission keeps the watermark free while others run", "[scheduler][admission]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 100);  // 400 tokens
  c.kv_admission_watermark = 0.1;                                 // 10 blocks
  c.max_num_batched_tokens = 1000;
  Sim sim(c);
  REQUIRE(sim.submit(1, 40, 50).ok());  // 11 blocks
  sim.step();
  // 2 would take 80 of the 89 free blocks, leaving 9 < 10: it waits while 1 runs.
  REQUIRE(sim.submit(2, 318, 1).ok());
  sim.step();
  CHECK(sim.waiting() == std::set<SeqId>{2});
  // 3 alone would fit, but admission is head-of-line: it does not overtake 2.
  REQUIRE(sim.submit(3, 4, 1).ok());
  sim.step();
  CHECK(sim.waiting() == std::set<SeqId>{2, 3});
  sim.sched.abort(1);
  // Alone, 2 may use every block.
  sim.step();
  CHECK(sim.finished.count(2));
  sim.step();
  CHECK(sim.finished.count(3));
}
