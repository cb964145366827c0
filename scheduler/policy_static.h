#pragma once
// Static batching: fixed batches of N. A batch launches when N sequences wait, when the
// oldest has waited flush_timeout, or on Scheduler::flush(); it runs to completion (no
// sequence joins until every member has finished) and the next batch forms from the queue.
#include "scheduler/policy.h"

namespace tessera {

class StaticPolicy final : public BatchPolicy {
 public:
  StaticPolicy(int batch_size, std::chrono::milliseconds flush_timeout)
      : batch_size_(batch_size), flush_timeout_(flush_timeout) {}
  PolicyKind kind() const override { return PolicyKind::kStatic; }
  bool joins_every_step() const override { return false; }
  int admit_limit(const QueueView& view, std::chrono::steady_clock::time_point now) const override;
  std::chrono::steady_clock::time_point next_timer(const QueueView& view) const override;

 private:
  int batch_size_;
  std::chrono::milliseconds flush_timeout_;
};

}  // namespace tessera
