// Dynamic batching: launch at max batch size or when the oldest request has waited
// max_queue_delay; run to completion.
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

TEST_CASE("dynamic: launch on max batch or max queue delay (table)", "[scheduler][dynamic]") {
  SchedulerConfig c = make_config(PolicyKind::kDynamic, 32);
  c.max_num_seqs = 3;
  c.dynamic_max_queue_delay = milliseconds(10);
  Sim sim(c);
  run_table(sim, {
                     {{{1, 4, 1}}, {}, {1}, milliseconds(5)},  // t=0: too early
                     {{}, {}, {1}, milliseconds(5)},           // t=5: still early
                     {{}, {}, {}},                             // t=10: delay expired
                     {{{2, 4, 2}, {3, 4, 2}, {4, 4, 2}, {5, 4, 2}}, {2, 3, 4}, {5}},  // full
                     {{}, {}, {5}},                    // batch done; 5 waited 1 ms only
                     {{}, {}, {5}, milliseconds(10)},  //
                     {{}, {5}, {}},                    // delay expired: 5 runs
                     {{}, {}, {}},
                 });
  CHECK(sim.finished.size() == 5);
  CHECK(sim.sched.kv().stats().num_used == 0);
}

TEST_CASE("dynamic: the queue-delay timer is reported", "[scheduler][dynamic]") {
  SchedulerConfig c = make_config(PolicyKind::kDynamic, 32);
  c.max_num_seqs = 4;
  c.dynamic_max_queue_delay = milliseconds(10);
  Sim sim(c);
  const TimePoint arrival = sim.now;
  REQUIRE(sim.submit(1, 4, 1).ok());
  StepPlan p = sim.step();
  CHECK(p.empty());
  CHECK(p.retry_at == arrival + milliseconds(10));
}
