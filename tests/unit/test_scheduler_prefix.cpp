// Prefix caching and copy-on-write forks through the scheduler.
#include "common/error.h"
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

std::vector<int32_t> with_suffix(const std::vector<int32_t>& prefix, int n, int32_t base) {
  std::vector<int32_t> p = prefix;
  for (int i = 0; i < n; ++i) p.push_back(base + i);
  return p;
}

SchedulerConfig prefix_config(bool enable = true) {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 400, 16);
  c.max_num_batched_tokens = 2048;
  c.kv.enable_prefix_caching = enable;
  return c;
}

}  // namespace

TEST_CASE("two requests sharing a 1000-token prefix compute it once", "[scheduler][prefix]") {
  const std::vector<int32_t> shared = distinct_prompt(77, 1000);
  Sim sim(prefix_config());
  REQUIRE(sim.submit_prompt(1, with_suffix(shared, 10, 5000), 2).ok());
  StepPlan p = sim.step();
  REQUIRE(p.seqs.size() == 1);
  CHECK(p.seqs[0].start == 0);
  CHECK(p.seqs[0].end == 1010);
  sim.step();  // 1 finishes; its 63 full blocks stay cached
  CHECK(sim.finished.count(1));
  CHECK(sim.sched.kv().stats().num_used == 0);
  CHECK(sim.sched.kv().stats().num_cached == 63);

  REQUIRE(sim.submit_prompt(2, with_suffix(shared, 10, 6000), 1).ok());
  p = sim.step();
  REQUIRE(p.seqs.size() == 1);
  CHECK(p.seqs[0].start == 992);  // 62 whole blocks; block 62 holds diverging tokens
  CHECK(p.seqs[0].end == 1010);
  CHECK(sim.computed_tokens == 1010 + 1 + 18);
  const KvStats s = sim.sched.kv().stats();
  CHECK(s.prefix_query_tokens == 1010 + 1010);
  CHECK(s.prefix_hit_tokens == 992);
}

TEST_CASE("prefix hits while the first request still runs share its blocks",
          "[scheduler][prefix]") {
  const std::vector<int32_t> shared = distinct_prompt(77, 1000);
  Sim sim(prefix_config());
  REQUIRE(sim.submit_prompt(1, shared, 50).ok());
  sim.step();
  const int used_one = sim.sched.kv().stats().num_used;
  CHECK(used_one == 63);  // 1000 tokens + 1 slot: 63 blocks
  // The identical prompt: at least one token is recomputed, so 992 of 1000 come cached.
  REQUIRE(sim.submit_prompt(2, shared, 50).ok());
  StepPlan p = sim.step();
  const ScheduledSeq* s2 = nullptr;
  for (const auto& s : p.seqs) {
    if (s.id == 2) s2 = &s;
  }
  REQUIRE(s2);
  CHECK(s2->start == 992);
  CHECK(s2->end == 1000);
  CHECK(s2->sample);
  CHECK(sim.sched.info(2)->num_cached_prompt_tokens == 992);
  // 62 blocks shared: 2 owns only its last block in addition.
  CHECK(sim.sched.kv().stats().num_used == used_one + 1);
  sim.sched.abort(1);
  sim.sched.abort(2);
  CHECK(sim.sched.kv().stats().num_used == 0);
  sim.sched.check_invariants();
}

TEST_CASE("prefix caching off: every prompt is computed in full", "[scheduler][prefix]") {
  const std::vector<int32_t> shared = distinct_prompt(77, 1000);
  Sim sim(prefix_config(false));
  REQUIRE(sim.submit_prompt(1, shared, 1).ok());
  sim.step();
  REQUIRE(sim.submit_prompt(2, shared, 1).ok());
  StepPlan p = sim.step();
  REQUIRE(p.seqs.size() == 1);
  CHECK(p.seqs[0].start == 0);
  CHECK(sim.sched.kv().stats().prefix_hit_tokens == 0);
}

TEST_CASE("forks share the prompt's blocks and copy the partial one on write",
          "[scheduler][fork]") {
  Sim sim(make_config(PolicyKind::kContinuous, 16));  // block size 4
  REQUIRE(sim.submit(1, 6, 3).ok());
  StepPlan p = sim.step();  // prefill [0, 6) + first token
  REQUIRE(p.seqs.size() == 1);
  const std::vector<BlockId> parent_table = p.seqs[0].block_table;
  REQUIRE(parent_table.size() == 2);

  sim.sched.fork(1, 2, /*first_token=*/4242);
  sim.max_new_of[2] = 3;
  CHECK(sim.sched.info(2)->num_computed == 6);
  CHECK(sim.sched.tokens(2)->back() == 4242);
  CHECK(sim.sched.tokens(1)->back() != 4242);
  CHECK(sim.sched.kv().stats().num_used == 2);  // nothing copied yet
  sim.sched.check_invariants();

  p = sim.step();
  REQUIRE(p.seqs.size() == 2);
  REQUIRE(p.copies.size() == 1);
  CHECK(p.copies[0].src == parent_table[1]);
  const auto& t1 = p.seqs[0].block_table;
  const auto& t2 = p.seqs[1].block_table;
  CHECK(t1[0] == t2[0]);  // the full block stays shared
  CHECK(t1[1] != t2[1]);  // one of them now writes a private copy
  CHECK((p.copies[0].dst == t1[1] || p.copies[0].dst == t2[1]));
  CHECK(sim.sched.kv().stats().num_used == 3);

  // Errors: forking a sequence mid-prefill or onto a live id.
  CHECK_THROWS_AS(sim.sched.fork(1, 2, 1), Error);
  REQUIRE(sim.submit(5, 40, 3).ok());
  CHECK_THROWS_AS(sim.sched.fork(5, 6, 1), Error);  // still waiting

  sim.sched.abort(1);
  sim.sched.abort(2);
  sim.sched.abort(5);
  CHECK(sim.sched.kv().stats().num_used == 0);
  sim.sched.check_invariants();
}
