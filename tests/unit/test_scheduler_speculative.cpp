// Speculative decoding in the scheduler: draft slots are planned after a decode's known
// token, verified tokens are appended, and a rejected tail's KV is rolled back.
#include "test_scheduler_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

// The fake target emits fake_token(id, p) for position p; the proposer is right for the
// first `right` tokens of each draft and wrong after.
struct SpecSim {
  Sim sim;
  int draft_len;
  int right;
  int64_t drafted = 0, accepted = 0;

  SpecSim(const SchedulerConfig& c, int k, int right_tokens)
      : sim(c), draft_len(k), right(right_tokens) {}

  StepPlan step() {
    for (SeqId id : sim.sched.running_ids()) sim.sched.set_draft_len(id, draft_len);
    StepPlan plan = sim.sched.schedule(sim.now);
    sim.sched.check_invariants();
    std::vector<SampledToken> sampled;
    for (const ScheduledSeq& s : plan.seqs) {
      REQUIRE(static_cast<int>(s.tokens.size()) == s.num_tokens());
      REQUIRE(s.block_table.size() * 4 >= static_cast<size_t>(s.end));
      if (!s.sample) continue;
      const int p = s.end - s.num_draft;  // position of the first new token
      int a = 0;
      while (a < s.num_draft && a < right) ++a;  // drafts [0, a) match the target
      for (int j = 0; j <= a; ++j) sampled.push_back({s.id, fake_token(s.id, p + j)});
      drafted += s.num_draft;
      accepted += a;
    }
    sim.sched.update(plan, sampled);
    sim.sched.check_invariants();
    for (const ScheduledSeq& s : plan.seqs) {
      const auto info = sim.sched.info(s.id);
      if (!info || !s.sample) continue;
      // The rolled-back table holds only what the computed tokens need.
      CHECK(info->num_blocks == (info->num_computed + 3) / 4);
      if (info->num_tokens - info->num_prompt_tokens >= sim.max_new_of[s.id]) {
        sim.finished[s.id] = *sim.sched.tokens(s.id);
        REQUIRE(sim.sched.finish(s.id));
      }
    }
    return plan;
  }
  void run(int max_steps = 10000) {
    for (int i = 0; i < max_steps && sim.sched.has_work(); ++i) step();
    REQUIRE_FALSE(sim.sched.has_work());
  }
};

std::vector<int32_t> expected_tokens(SeqId id, int prompt_len, int max_new) {
  std::vector<int32_t> t = distinct_prompt(id, prompt_len);
  for (int p = prompt_len; p < prompt_len + max_new; ++p) t.push_back(fake_token(id, p));
  return t;
}

}  // namespace

TEST_CASE("speculative steps produce the same tokens as plain decoding", "[scheduler][spec]") {
  for (int right : {0, 1, 2, 4}) {
    SpecSim s(make_config(PolicyKind::kContinuous, 64), 4, right);
    for (SeqId id = 1; id <= 5; ++id)
      REQUIRE(s.sim.submit(id, 5 + 3 * static_cast<int>(id), 23).ok());
    s.run();
    for (SeqId id = 1; id <= 5; ++id)
      CHECK(s.sim.finished.at(id) == expected_tokens(id, 5 + 3 * static_cast<int>(id), 23));
    CHECK(s.sim.sched.kv().stats().num_used == 0);
    if (right == 0) CHECK(s.accepted == 0);
    if (right == 4) CHECK(s.accepted > 0);
    CHECK(s.drafted > 0);
  }
}

TEST_CASE("a draft never carries a sequence past max_new_tokens or max_model_len",
          "[scheduler][spec]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_model_len = 30;
  SpecSim s(c, 8, 8);
  REQUIRE(s.sim.submit(1, 10, 7).ok());   // max_new_tokens binds
  REQUIRE(s.sim.submit(2, 20, 50).ok());  // max_model_len binds: 10 tokens at most
  for (int i = 0; i < 100 && s.sim.sched.has_work(); ++i) {
    const StepPlan plan = s.step();
    for (const ScheduledSeq& q : plan.seqs) {
      const int known_after = q.end - q.num_draft + q.num_draft + 1;  // all accepted
      if (q.id == 1) CHECK(known_after <= 10 + 7);
      if (q.id == 2) CHECK(known_after <= 30);
    }
    if (auto info = s.sim.sched.info(2); info && info->num_tokens >= 30) {
      CHECK(info->num_tokens == 30);
      s.sim.sched.finish(2);
    }
  }
  CHECK(s.sim.finished.at(1) == expected_tokens(1, 10, 7));
}

TEST_CASE("drafts fit the token budget and never preempt", "[scheduler][spec]") {
  SchedulerConfig c = make_config(PolicyKind::kContinuous, 64);
  c.max_num_batched_tokens = 6;
  SpecSim s(c, 4, 4);
  for (SeqId id = 1; id <= 3; ++id) REQUIRE(s.sim.submit(id, 4, 12).ok());
  for (int i = 0; i < 200 && s.sim.sched.has_work(); ++i) {
    const StepPlan plan = s.step();
    CHECK(plan.num_tokens <= 6);
  }
  CHECK(s.sim.sched.stats().num_preemptions == 0);

  // Two sequences filling a tiny pool: drafts are dropped instead of preempting the other.
  SpecSim tight(make_config(PolicyKind::kContinuous, 6), 4, 0);
  REQUIRE(tight.sim.submit(1, 8, 4).ok());
  REQUIRE(tight.sim.submit(2, 8, 4).ok());
  tight.run();
  CHECK(tight.sim.sched.stats().num_preemptions == 0);
  CHECK(tight.sim.finished.at(1) == expected_tokens(1, 8, 4));
  CHECK(tight.sim.finished.at(2) == expected_tokens(2, 8, 4));
}

TEST_CASE("update rejects more tokens than a draft can yield", "[scheduler][spec]") {
  Sim sim(make_config(PolicyKind::kContinuous, 16));
  REQUIRE(sim.submit(1, 4, 8).ok());
  sim.step();  // prefill
  sim.sched.set_draft_len(1, 2);
  const StepPlan plan = sim.sched.schedule(sim.now);
  REQUIRE(plan.seqs.size() == 1);
  REQUIRE(plan.seqs[0].num_draft == 2);
  REQUIRE(plan.seqs[0].num_logit_rows() == 3);
  std::vector<SampledToken> four(4, SampledToken{1, 7});
  CHECK_THROWS(sim.sched.update(plan, four));
}
