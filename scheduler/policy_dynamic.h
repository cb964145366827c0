#pragma once
// Dynamic batching (Triton-style): a batch launches as soon as max_batch sequences wait or
// the oldest waiting one has waited max_queue_delay, whichever comes first, taking up to
// max_batch; it runs to completion. Unlike static batching the size is an upper bound that
// load decides, and there is no manual flush: the delay is the only latency cost.
#include "scheduler/policy.h"

namespace tessera {

class DynamicPolicy final : public BatchPolicy {
 public:
  DynamicPolicy(int max_batch, std::chrono::milliseconds max_queue_delay)
      : max_batch_(max_batch), max_queue_delay_(max_queue_delay) {}
  PolicyKind kind() const override { return PolicyKind::kDynamic; }
  bool joins_every_step() const override { return false; }
  int admit_limit(const QueueView& view, std::chrono::steady_clock::time_point now) const override;
  std::chrono::steady_clock::time_point next_timer(const QueueView& view) const override;

 private:
  int max_batch_;
  std::chrono::milliseconds max_queue_delay_;
};

}  // namespace tessera
