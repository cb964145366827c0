#pragma once
// Test harness for the scheduler: a fake engine whose "model" emits a token that depends
// only on (sequence id, position), so a sequence's output is the same however it was
// batched, chunked or preempted. Checks every invariant around every step.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "scheduler/scheduler.h"

namespace tessera::test {

using TimePoint = std::chrono::steady_clock::time_point;
using std::chrono::milliseconds;

inline int32_t fake_token(SeqId id, int position) {
  return static_cast<int32_t>((id * 7919 + position * 31) % 997 + 1);
}

inline std::vector<int32_t> distinct_prompt(SeqId id, int len) {
  std::vector<int32_t> p(len);
  for (int i = 0; i < len; ++i) p[i] = static_cast<int32_t>(100000 + id * 1000 + i);
  return p;
}

inline SchedulerConfig make_config(PolicyKind policy, int usable_blocks, int block_size = 4) {
  SchedulerConfig c;
  c.policy = policy;
  c.kv.block_size = block_size;
  c.kv.num_blocks = usable_blocks + 1;
  return c;
}

struct Sim {
  explicit Sim(const SchedulerConfig& config) : sched(config) {}

  SubmitResult submit(SeqId id, int prompt_len, int max_new, int priority = 0,
                      std::optional<TimePoint> deadline = std::nullopt) {
    return submit_prompt(id, distinct_prompt(id, prompt_len), max_new, priority, deadline);
  }
  SubmitResult submit_prompt(SeqId id, std::vector<int32_t> prompt, int max_new, int priority = 0,
                             std::optional<TimePoint> deadline = std::nullopt) {
    SequenceSpec spec;
    spec.id = id;
    spec.prompt = std::move(prompt);
    spec.max_new_tokens = max_new;
    spec.priority = priority;
    spec.deadline = deadline;
    spec.arrival = now;
    SubmitResult r = sched.submit(std::move(spec));
    if (r.ok()) max_new_of[id] = max_new;
    return r;
  }

  // One engine step: schedule, "run", sample, update, finish what reached max_new.
  StepPlan step(milliseconds advance = milliseconds(1)) {
    StepPlan plan = sched.schedule(now);
    sched.check_invariants();
    check_plan(plan);
    std::vector<SampledToken> sampled;
    for (const ScheduledSeq& s : plan.seqs) {
      computed_tokens += s.num_tokens();
      if (s.sample) sampled.push_back({s.id, fake_token(s.id, s.end)});
    }
    for (const FailedSeq& f : plan.failed) failed[f.id] = f.reason;
    sched.update(plan, sampled);
    sched.check_invariants();
    for (const SampledToken& t : sampled) {
      const auto info = sched.info(t.id);
      REQUIRE(info);
      if (info->num_tokens - info->num_prompt_tokens >= max_new_of[t.id]) {
        finished[t.id] = *sched.tokens(t.id);
        REQUIRE(sched.finish(t.id));
      }
    }
    sched.check_invariants();
    now += advance;
    return plan;
  }

  void check_plan(const StepPlan& plan) {
    int total = 0;
    bool seen_prefill = false;
    std::set<SeqId> ids;
    for (const ScheduledSeq& s : plan.seqs) {
      REQUIRE(ids.insert(s.id).second);
      REQUIRE(s.start >= 0);
      REQUIRE(s.end > s.start);
      REQUIRE(static_cast<int>(s.tokens.size()) == s.num_tokens());
      const int bs = sched.config().kv.block_size;
      REQUIRE(static_cast<int>(s.block_table.size()) >= (s.end + bs - 1) / bs);
      for (BlockId b : s.block_table) REQUIRE(b != kNullBlock);
      const auto* known = sched.tokens(s.id);
      REQUIRE(known);
      REQUIRE(s.sample == (s.end == static_cast<int>(known->size())));
      for (int i = s.start; i < s.end; ++i) REQUIRE(s.tokens[i - s.start] == (*known)[i]);
      if (s.is_prefill) seen_prefill = true;
      REQUIRE((!seen_prefill || s.is_prefill));  // decodes come first
      total += s.num_tokens();
    }
    // Copies may run in parallel: destinations are distinct and never a source.
    std::set<BlockId> srcs, dsts;
    for (const BlockCopy& c : plan.copies) {
      srcs.insert(c.src);
      REQUIRE(dsts.insert(c.dst).second);
      REQUIRE(c.src != kNullBlock);
    }
    for (BlockId d : dsts) REQUIRE(srcs.count(d) == 0);
    REQUIRE(plan.num_tokens == total);
    REQUIRE(plan.num_prefill_tokens + plan.num_decode_tokens == total);
    // Two sequences never write the same KV slot in one step.
    std::set<int64_t> slots;
    const int bs = sched.config().kv.block_size;
    for (const ScheduledSeq& s : plan.seqs) {
      for (int p = s.start; p < s.end; ++p) {
        REQUIRE(slots.insert(int64_t{s.block_table[p / bs]} * bs + p % bs).second);
      }
    }
  }

  std::set<SeqId> running() const {
    auto v = sched.running_ids();
    return {v.begin(), v.end()};
  }
  std::set<SeqId> waiting() const {
    auto v = sched.waiting_ids();
    return {v.begin(), v.end()};
  }

  Scheduler sched;
  TimePoint now = TimePoint{} + std::chrono::seconds(1);
  std::map<SeqId, int> max_new_of;
  std::map<SeqId, std::vector<int32_t>> finished;  // all tokens at finish
  std::map<SeqId, FailReason> failed;
  int64_t computed_tokens = 0;
};

// One row of a table-driven test: submissions, then one step, then the expected queues.
struct Submit {
  SeqId id;
  int prompt_len;
  int max_new;
  int priority = 0;
};
struct StepRow {
  std::vector<Submit> submits;
  std::set<SeqId> running;  // after the step
  std::set<SeqId> waiting;
  milliseconds advance{1};
  bool flush = false;
};

inline void run_table(Sim& sim, const std::vector<StepRow>& rows) {
  int index = 0;
  for (const StepRow& row : rows) {
    INFO("step row " << index++);
    for (const Submit& s : row.submits) {
      REQUIRE(sim.submit(s.id, s.prompt_len, s.max_new, s.priority).ok());
    }
    if (row.flush) sim.sched.flush();
    sim.step(row.advance);
    CHECK(sim.running() == row.running);
    CHECK(sim.waiting() == row.waiting);
  }
}

}  // namespace tessera::test
