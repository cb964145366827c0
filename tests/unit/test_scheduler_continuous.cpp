// Continuous batching: iteration-level joins and leaves, chunked prefill under the token
// budget, decode-first ordering, max_num_seqs.
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

TEST_CASE("continuous: joins and leaves at every step (table)", "[scheduler][continuous]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 16);
  c.max_num_seqs = 2;
  c.max_num_batched_tokens = 8;
  Sim sim(c);
  run_table(sim, {
                     // A and B join (B gets a 2-token chunk), C waits for a slot.
                     {{{1, 6, 2}, {2, 6, 3}, {3, 3, 1}}, {1, 2}, {3}},
                     // A decodes and leaves; B finishes its prefill; no slot for C yet.
                     {{}, {2}, {3}},
                     // C joins the moment A's slot is free; D must wait (2 running).
                     {{{4, 20, 1}}, {2}, {4}},
                     // B leaves; D joins with a 7-token chunk next to B's decode.
                     {{}, {4}, {}},
                     {{}, {4}, {}},
                     {{}, {}, {}},
                 });
  CHECK(sim.finished.size() == 4);
  CHECK(sim.sched.kv().stats().num_used == 0);
}

TEST_CASE("continuous: chunked prefill respects the token budget, decodes first",
          "[scheduler][continuous]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_num_batched_tokens = 16;
  Sim sim(c);
  REQUIRE(sim.submit(1, 5, 10).ok());
  StepPlan p = sim.step();
  REQUIRE(p.seqs.size() == 1);
  CHECK(p.seqs[0].sample);
  REQUIRE(sim.submit(2, 40, 1).ok());
  // Step: seq 1 decodes (1 token), seq 2 gets the remaining 15.
  p = sim.step();
  REQUIRE(p.seqs.size() == 2);
  CHECK(p.seqs[0].id == 1);
  CHECK_FALSE(p.seqs[0].is_prefill);
  CHECK(p.seqs[0].num_tokens() == 1);
  CHECK(p.seqs[1].id == 2);
  CHECK(p.seqs[1].is_prefill);
  CHECK(p.seqs[1].start == 0);
  CHECK(p.seqs[1].end == 15);
  CHECK_FALSE(p.seqs[1].sample);  // a mid-prompt chunk yields no token
  CHECK(p.num_tokens == 16);
  CHECK(p.num_decode_tokens == 1);
  CHECK(p.num_prefill_tokens == 15);
  p = sim.step();
  CHECK(p.seqs[1].start == 15);
  CHECK(p.seqs[1].end == 30);
  p = sim.step();
  CHECK(p.seqs[1].start == 30);
  CHECK(p.seqs[1].end == 40);
  CHECK(p.seqs[1].sample);
  CHECK(p.num_tokens == 11);
  CHECK(sim.finished.count(2));
}

TEST_CASE("continuous: without chunking a prefill runs whole or waits", "[scheduler][continuous]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_num_batched_tokens = 16;
  c.enable_chunked_prefill = false;
  Sim sim(c);
  REQUIRE(sim.submit(1, 10, 3).ok());
  REQUIRE(sim.submit(2, 12, 1).ok());
  REQUIRE(sim.submit(3, 40, 1).ok());
  // 1 fits the budget; 2 (12 > 6 left) is not chunked and waits; so does 3 behind it.
  StepPlan p = sim.step();
  REQUIRE(p.seqs.size() == 1);
  CHECK(p.seqs[0].id == 1);
  CHECK(p.seqs[0].num_tokens() == 10);
  CHECK(sim.waiting() == std::set<SeqId>{2, 3});
  // 1 decodes; 2 now fits whole (1 + 12 <= 16); 3 would exceed what is left.
  p = sim.step();
  REQUIRE(p.seqs.size() == 2);
  CHECK(p.seqs[1].id == 2);
  CHECK(p.seqs[1].num_tokens() == 12);
  CHECK(sim.waiting() == std::set<SeqId>{3});
  // 3 is longer than any step's budget: it runs whole as the step's only prefill, next to
  // the decode, rather than never.
  p = sim.step();
  REQUIRE(p.seqs.size() == 2);
  CHECK(p.seqs[0].id == 1);
  CHECK(p.seqs[1].id == 3);
  CHECK(p.seqs[1].num_tokens() == 40);
  CHECK(p.seqs[1].sample);
  CHECK(p.num_tokens == 41);
}

TEST_CASE("continuous: max_num_seqs bounds the running set", "[scheduler][continuous]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 200);
  c.max_num_seqs = 3;
  c.max_num_batched_tokens = 1000;
  Sim sim(c);
  for (SeqId id = 1; id <= 7; ++id) REQUIRE(sim.submit(id, 4, 4).ok());
  for (int i = 0; i < 40 && sim.sched.has_work(); ++i) {
    sim.step();
    CHECK(sim.sched.num_running() <= 3);
  }
  CHECK(sim.finished.size() == 7);
}
