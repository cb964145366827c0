#pragma once
// Scheduler: a CPU-only planner over waiting and running queues and a KV block view.
// Each sequence is "tokens computed" catching up to "tokens known" (prompt + generated), so
// chunked prefill, prefix-cache hits and recompute after preemption need no separate phases.
//
// Usage (engine thread; nothing here is thread-safe):
//
//   SchedulerConfig cfg;                         // policy, budgets, queue bound
//   cfg.kv = KvCacheConfig::from_budget(bytes, bytes_per_token, 16);
//   Scheduler sched(cfg);                        // throws Error(kInvalidArgument) on bad cfg
//   SubmitResult r = sched.submit({.id = 7, .prompt = ids, .max_new_tokens = 64,
//                                  .priority = 0, .arrival = now});
//   if (r.status == SubmitStatus::kQueueFull) { /* 429 */ }
//   for (;;) {
//     StepPlan plan = sched.schedule(Clock::now());      // immutable
//     // plan.failed / plan.preempted / plan.released: tell the requests, drop state
//     backend.copy_kv_blocks(plan.copies);
//     auto logits = runner.execute(plan);                // seqs[i]: tokens [start, end)
//     std::vector<SampledToken> out;                     // one per seq with sample == true
//     sched.update(plan, out);                           // appends tokens, caches blocks
//     for (SeqId id : done) sched.finish(id);            // EOS / stop / length: frees blocks
//   }
//   sched.abort(id);                                     // cancel, waiting or running
//   // n > 1: after the step where the parent sampled its first token, for each extra choice
//   sched.fork(parent, child_id, its_first_token);       // shares the prompt's blocks (COW)
//
// Order of service (documented for users): higher integer `priority` first; within a
// priority, earliest deadline first (sequences without a deadline after those with one);
// then earlier arrival. Optional aging (SchedulerConfig::priority_aging_interval) raises the
// effective priority of sequences that have waited long, so low priority cannot starve.
// Preemption (when KV blocks run out) takes the lowest priority, then the latest arrival;
// a victim's blocks are freed and it returns to the waiting queue keeping its generated
// tokens, which are recomputed (prompt + generated) when it resumes.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvcache/kv_cache_manager.h"
#include "scheduler/policy.h"
#include "scheduler/scheduler_config.h"
#include "scheduler/step_plan.h"

namespace tessera {

struct SequenceSpec {
  SeqId id = 0;                 // unique among live sequences; chosen by the engine
  std::vector<int32_t> prompt;  // >= 1 token
  int max_new_tokens = 0;       // only to reject what can never fit; the engine stops it
  int priority = 0;             // higher runs first
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::chrono::steady_clock::time_point arrival{};
  // Sequences this one becomes (n > 1: it forks num_seqs - 1 siblings after its first
  // token). Admission reserves min(num_seqs, max_num_seqs) slots against max_num_seqs, so
  // forks never push the running count past it; siblings beyond that wait (see fork()).
  int num_seqs = 1;
};

enum class SubmitStatus {
  kAccepted,
  kQueueFull,  // waiting queue at max_waiting: retry later (HTTP 429 / RESOURCE_EXHAUSTED)
  kTooLong,    // prompt (+ max_new_tokens) exceeds max_model_len or the whole KV cache
  kInvalid,    // empty prompt, duplicate id, negative max_new_tokens
};
const char* submit_status_name(SubmitStatus s);

struct SubmitResult {
  SubmitStatus status = SubmitStatus::kAccepted;
  std::string message;  // empty when accepted
  bool ok() const { return status == SubmitStatus::kAccepted; }
};

// A sequence verifying a draft of k tokens yields 1 to k + 1 consecutive entries with its id:
// the accepted draft tokens, then the target model's own next token.
struct SampledToken {
  SeqId id = 0;
  int32_t token = 0;
};

enum class SeqState { kWaiting, kRunning };

// Read-only view of one live sequence.
struct SequenceInfo {
  SeqId id = 0;
  SeqState state = SeqState::kWaiting;
  int priority = 0;
  int num_prompt_tokens = 0;
  int num_tokens = 0;                // known: prompt + generated
  int num_computed = 0;              // KV written for tokens [0, num_computed)
  int num_cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache at first start
  int num_preemptions = 0;
  int num_blocks = 0;
  int reserved_seqs = 1;  // itself plus forks still to come
};

struct SchedulerStats {
  int num_waiting = 0;
  int num_running = 0;
  int num_running_slots = 0;    // running sequences plus the forks they have reserved
  int64_t num_preemptions = 0;  // total
  int64_t num_steps = 0;
  int64_t num_rejected = 0;  // submit() refusals of any kind
  KvStats kv;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const SchedulerConfig& config() const { return config_; }

  SubmitResult submit(SequenceSpec spec);
  // Cancels a waiting or running sequence; its blocks return to the pool now. False if the
  // id is unknown (already finished, failed or never submitted).
  bool abort(SeqId id);
  // The engine saw EOS / a stop string / max_tokens: frees the blocks (full computed blocks
  // stay in the prefix cache). False if the id is unknown.
  bool finish(SeqId id);
  // n > 1: a running `parent` that just sampled (its last known token not yet computed)
  // gets a sibling: same computed tokens and blocks (shared, copy-on-write), its own last
  // token `first_token`. The child takes one of the parent's reserved slots
  // (SequenceSpec::num_seqs), else a free one; with none left it joins the waiting queue
  // instead (no KV: on admission it recomputes, mostly from the prefix cache). Returns true
  // when the child runs now. Throws Error(kInvalidArgument) if parent is not in that state
  // or child is taken.
  bool fork(SeqId parent, SeqId child, int32_t first_token);
  // Speculative decoding: the next schedule() plans `draft_len` slots for proposed tokens
  // after this sequence's last known token, if it decodes then. Clamped so accepted tokens
  // never pass max_new_tokens or max_model_len, and dropped (never preempting anyone) when
  // the token budget or free blocks fall short. Applies to one schedule() only.
  void set_draft_len(SeqId id, int draft_len);
  // Static policy: launch a partial batch at the next schedule() (no effect on an empty
  // queue; a batch still running finishes first).
  void flush() { flush_requested_ = true; }

  StepPlan schedule(std::chrono::steady_clock::time_point now);
  // Records that `plan` ran: computed counts advance, full blocks enter the prefix cache,
  // and each sequence with sample == true appends its token(s) from `sampled`
  // (Error(kInternal) if missing). A draft's rejected tail is rolled back: the computed
  // count stops after the accepted tokens and blocks past it are freed. Sequences aborted or
  // finished since schedule() are skipped.
  void update(const StepPlan& plan, std::span<const SampledToken> sampled);
  // Pipelined steps: update() took kPendingToken for a token still on the device; this puts
  // the sampled token in its place (the sequence's last one). Unknown ids are ignored (the
  // sequence ended meanwhile); a last token that is not pending is an Error(kInternal).
  void resolve_pending(SeqId id, int32_t token);

  std::optional<SequenceInfo> info(SeqId id) const;
  const std::vector<int32_t>* tokens(SeqId id) const;  // known tokens; nullptr if unknown
  std::vector<SeqId> waiting_ids() const;              // in service order as of the last schedule()
  std::vector<SeqId> running_ids() const;              // in admission order
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  // What max_num_seqs bounds: running sequences plus the forks they have reserved.
  int num_running_slots() const;
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  SchedulerStats stats() const;
  const KvCacheManager& kv() const { return kv_; }

  // Scheduler and KV invariants (tests): ids unique across queues, waiting sequences own no
  // blocks, running ones own enough for their computed tokens, KV ref counts equal owners.
  // Throws Error(kInternal).
  void check_invariants() const;

 private:
  struct Sequence;
  class Pass;

  SchedulerConfig config_;
  KvCacheManager kv_;  // declared before sequences_: outlives every SequenceKv
  std::unique_ptr<BatchPolicy> policy_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>> sequences_;
  std::vector<SeqId> waiting_;
  std::vector<SeqId> running_;
  std::vector<SeqId> released_;  // for the next plan
  bool flush_requested_ = false;
  uint64_t next_step_ = 1;
  int64_t num_preemptions_ = 0;
  int64_t num_rejected_ = 0;
};

}  // namespace tessera
