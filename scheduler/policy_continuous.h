#pragma once
// Continuous (iteration-level) batching, as in Orca and vLLM: at every step finished
// sequences leave and waiting ones join while max_num_seqs, the token budget
// (max_num_batched_tokens, with chunked prefill) and free KV blocks allow.
#include "scheduler/policy.h"

namespace tessera {

class ContinuousPolicy final : public BatchPolicy {
 public:
  explicit ContinuousPolicy(int max_num_seqs) : max_num_seqs_(max_num_seqs) {}
  PolicyKind kind() const override { return PolicyKind::kContinuous; }
  bool joins_every_step() const override { return true; }
  int admit_limit(const QueueView& view, std::chrono::steady_clock::time_point now) const override;
  std::chrono::steady_clock::time_point next_timer(const QueueView&) const override { return {}; }

 private:
  int max_num_seqs_;
};

}  // namespace tessera
