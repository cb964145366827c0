#pragma once
// Speculative decoding's two decisions, as pure functions of counts: which drafted tokens a
// verification accepts, and how many tokens to draft next step.
#include <cstdint>
#include <span>
#include <string>

#include "engine/spec_step_cost.h"

namespace tessera {

// Verification by matching: sampled[i] is the target's own token for the position after
// draft[0, i) (drawn exactly as without speculation: same seed, same output index). The
// draft's longest prefix equal to the samples is accepted; the step then emits
// sampled[0 .. accepted] (accepted + 1 tokens). For a deterministic draft this is the
// rejection rule (accept d with min(1, p(d) / q(d)) = p(d); on rejection the sample is
// distributed as the normalised max(0, p - q)), so the output follows the target model.
// sampled.size() must be draft.size() + 1.
int accepted_prefix(std::span<const int32_t> draft, std::span<const int32_t> sampled);

struct SpecControlConfig {
  int max_draft = 4;  // --num-speculative-tokens
  // A step computing more tokens than this is compute-bound (its cost grows with its
  // tokens), so drafting stops there: decoding sequences * (k + 1) <= this. Measured
  // break-even per backend (bench/results/speculative.md).
  int max_step_tokens = 256;
  // Priors, until the step times are measured (StepCostTable): one drafted token's cost and
  // one extra verified token's cost below max_step_tokens, in target decode steps.
  double draft_cost = 0.0;
  double verify_cost = 0.02;
  bool adaptive = true;  // false: always max_draft (within max_step_tokens)
};

// Chooses k per step from the measured acceptance rate and the batch: the k maximising
// tokens per step over its cost, within max_step_tokens. Tokens per step are what steps that
// chose k gave at this batch size (record_step), else 1 + a + ... + a^k for acceptance rate
// a. The cost is the measured step time with k over the time with none
// (StepCostTable::estimate), else the prior 1 + k * (draft_cost + verify_cost), which is
// optimistic enough to get the longest drafts measured first.
class SpecController {
 public:
  explicit SpecController(const SpecControlConfig& config)
      : config_(config), costs_(config.max_draft) {}
  const SpecControlConfig& config() const { return config_; }
  // Draft length for this step when `num_decoding` sequences decode (0 = speculation off).
  int draft_len(int num_decoding);
  // After a step, over all its sequences: draft tokens examined (the accepted ones plus the
  // first rejected one of each sequence; later ones were never compared) and accepted. Their
  // ratio estimates the per-token acceptance rate without the bias of short drafts.
  void record(int64_t examined, int64_t accepted);
  // After a decode-only step for which draft_len chose k: its wall time (proposing included,
  // so a draft model's passes count) and the tokens it gave per sequence.
  void record_step(int num_seqs, int k, double seconds, double tokens_per_seq);
  double acceptance_rate() const { return rate_; }
  // The cost of k drafts per sequence the controller uses now, in decode steps.
  double step_cost(int num_decoding, int k) const;
  // Expected tokens per sequence and step with k drafts.
  double step_gain(int num_decoding, int k) const;
  // The rate, the gains and the costs by k, for a debug log.
  std::string describe(int num_decoding) const;

 private:
  SpecControlConfig config_;
  StepCostTable costs_;
  double rate_ = 0.6;  // prior until measured; moves with an exponential average
  int64_t steps_ = 0;
};

}  // namespace tessera
