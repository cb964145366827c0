#pragma once
// Speculative decoding: a Proposer suggests the next tokens of decoding sequences; the
// target model verifies them in one step (engine/spec_verify.h). Proposals are deterministic
// (a lookup or a draft model's argmax), so verification by matching the target's own sample
// is the standard rejection rule for a one-hot draft distribution and the output is exactly
// what the target alone would produce, seeded sampling included.
//
// Per step, on the engine thread:
//   before schedule():  n = draft_len(id, tokens, k)   for each sequence about to decode
//   in the step:        propose(plan, layout, copies)  fills the plan's draft slots
//   after verification: verified(plan, accepted)
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kernels/ops.h"
#include "scheduler/step_plan.h"

namespace tessera {

class Proposer {
 public:
  virtual ~Proposer() = default;
  virtual const char* name() const = 0;
  // Draft tokens it offers now for a sequence whose known tokens are `tokens` (prompt and
  // generated), at most k; 0 when it has nothing to offer.
  virtual int draft_len(SeqId id, std::span<const int32_t> tokens, int k) = 0;
  // Runs every step, drafts or not: copies are this step's copy-on-write block copies, layout the
  // target's step layout (draft slots still hold placeholders). Returns, aligned with plan.seqs,
  // the proposed tokens of each sequence (exactly num_draft of them; empty when num_draft == 0).
  virtual std::vector<std::vector<int32_t>> propose(
      const StepPlan& plan, const StepLayout& layout,
      std::span<const std::pair<int32_t, int32_t>> copies) = 0;
  // After verification: accepted[i] draft tokens of plan.seqs[i] were accepted.
  virtual void verified(const StepPlan& plan, std::span<const int> accepted) {
    (void)plan;
    (void)accepted;
  }
  // Sequences preempted (their blocks freed, to be recomputed) or released: whatever the
  // proposer keeps of them is stale.
  virtual void forget(std::span<const SeqId> ids) { (void)ids; }
  // Whether propose() must see every step, drafts or not; otherwise steps without drafts
  // can be pipelined like plain decoding.
  virtual bool runs_every_step() const { return false; }
  // Relative cost of proposing one token, in target decode steps (0 for a lookup).
  virtual double draft_cost() const { return 0.0; }
};

}  // namespace tessera
