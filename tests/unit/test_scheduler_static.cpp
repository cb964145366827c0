// Static batching: fixed batches of N, launched when full, on the flush timeout or on
// flush(); a batch runs to completion before the next one forms.
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

TEST_CASE("static: batches of N run to completion (table)", "[scheduler][static]") {
  SchedulerConfig c = make_config(PolicyKind::kStatic, 32);
  c.static_batch_size = 2;
  c.static_flush_timeout = milliseconds(50);
  Sim sim(c);
  run_table(sim, {
                     {{{1, 4, 2}}, {}, {1}},     // 1 of 2: waits for a partner
                     {{{2, 4, 3}}, {1, 2}, {}},  // full: launch
                     {{{3, 4, 1}}, {2}, {3}},    // 1 left; 3 may not join the batch
                     {{}, {}, {3}},              // batch done; 3 alone, timer not due
                     {{}, {}, {3}, milliseconds(50)},
                     {{}, {}, {}},  // flush timeout launched 3 alone
                     {{{4, 4, 1}}, {}, {}, milliseconds(1), true},      // flush(): at once
                     {{{5, 4, 2}, {6, 4, 2}, {7, 4, 2}}, {5, 6}, {7}},  // only N launch
                     {{}, {}, {7}},
                 });
  CHECK(sim.finished.size() == 6);
  CHECK(sim.sched.kv().stats().num_used == 0);
}

TEST_CASE("static: the flush timer is reported for the engine to sleep on", "[scheduler][static]") {
  SchedulerConfig c = make_config(PolicyKind::kStatic, 32);
  c.static_batch_size = 4;
  c.static_flush_timeout = milliseconds(50);
  Sim sim(c);
  const TimePoint arrival = sim.now;
  REQUIRE(sim.submit(1, 4, 1).ok());
  StepPlan p = sim.step();
  CHECK(p.empty());
  CHECK(p.retry_at == arrival + milliseconds(50));
}

TEST_CASE("static: a batch takes the best N by priority", "[scheduler][static]") {
  SchedulerConfig c = make_config(PolicyKind::kStatic, 32);
  c.static_batch_size = 2;
  Sim sim(c);
  REQUIRE(sim.submit(1, 4, 1, 0).ok());
  REQUIRE(sim.submit(2, 4, 1, 5).ok());
  REQUIRE(sim.submit(3, 4, 1, 1).ok());
  StepPlan p = sim.step();
  std::set<SeqId> launched;
  for (const auto& s : p.seqs) launched.insert(s.id);
  CHECK(launched == std::set<SeqId>{2, 3});
  CHECK(sim.waiting() == std::set<SeqId>{1});
}

TEST_CASE("static: flush() on an empty queue does not launch a later arrival alone",
          "[scheduler][static]") {
  SchedulerConfig c = make_config(PolicyKind::kStatic, 32);
  c.static_batch_size = 2;
  Sim sim(c);
  sim.sched.flush();
  sim.step();
  REQUIRE(sim.submit(1, 4, 1).ok());
  sim.step();
  CHECK(sim.waiting() == std::set<SeqId>{1});
  sim.sched.flush();
  sim.step();
  CHECK(sim.finished.count(1));
}
