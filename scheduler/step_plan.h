#pragma once
// StepPlan: what one engine step computes, decided by Scheduler::schedule(). Immutable once
// returned; the engine turns it into a StepLayout, runs it, and hands it back to update().
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kvcache/kv_cache_manager.h"

namespace tessera {

using SeqId = int64_t;

// A token that a step still running on the device has sampled but the host has not seen yet
// (pipelined steps: the engine schedules step N + 1 while the device runs step N). It may
// stand as a sequence's last known token until Scheduler::resolve_pending replaces it.
inline constexpr int32_t kPendingToken = -1;

// One sequence's share of the step: compute its known tokens [start, end).
struct ScheduledSeq {
  SeqId id = 0;
  int start = 0;  // = tokens computed before this step (after any prefix-cache hit)
  int end = 0;    // tokens computed after this step; <= tokens known
  // end == tokens known (+ num_draft): the last row yields logits and the engine samples
  // one token; with a draft, each of the last num_draft + 1 rows does (verification).
  bool sample = false;
  // Speculative decoding: the last num_draft positions of [start, end) are slots for
  // proposed tokens (tokens holds placeholders there; the proposer fills them in the step).
  int num_draft = 0;
  bool is_prefill = false;           // start < prompt length (incl. recompute after preemption)
  std::vector<int32_t> tokens;       // token ids at [start, end)
  std::vector<BlockId> block_table;  // covers positions [0, end); slot = table[p / B] * B + p % B
  int num_tokens() const { return end - start; }
  int num_logit_rows() const { return sample ? num_draft + 1 : 0; }
};

enum class FailReason {
  kCannotFit,  // needs more KV blocks than the whole pool holds
  kDeadline,   // its deadline passed before it finished
};
const char* fail_reason_name(FailReason r);

struct FailedSeq {
  SeqId id = 0;
  FailReason reason = FailReason::kCannotFit;
  std::string message;  // human-readable, with the numbers
};

struct StepPlan {
  uint64_t step = 0;               // increasing per schedule() call
  std::vector<ScheduledSeq> seqs;  // decodes first, then prefill chunks
  std::vector<BlockCopy> copies;   // copy-on-write: run before the forward pass
  std::vector<SeqId> preempted;    // blocks freed; back in waiting, will recompute
  std::vector<SeqId> released;     // finished/aborted since the last plan; blocks freed
  std::vector<FailedSeq> failed;   // removed by the scheduler; the engine reports them
  int num_tokens = 0;              // sum of seqs[i].num_tokens()
  int num_prefill_tokens = 0;
  int num_decode_tokens = 0;
  // Nothing scheduled but sequences wait on a policy timer: call schedule() again at this
  // time (or when a request arrives). Equal to time_point{} when not waiting on a timer.
  std::chrono::steady_clock::time_point retry_at{};

  bool empty() const { return seqs.empty(); }
};

}  // namespace tessera
