#pragma once
// Batching policy: decides WHEN waiting sequences may start and how many. Everything else
// (ordering by priority, token budget, KV allocation, preemption) is shared and lives in
// Scheduler. A new batching behaviour is a new policy, not a flag in the scheduling loop.
#include <chrono>
#include <memory>

#include "scheduler/scheduler_config.h"

namespace tessera {

// Counts are slots, not sequences: a sequence that will fork (n > 1) counts n, so every
// limit on them also bounds the forks.
struct QueueView {
  int num_running = 0;
  int num_waiting = 0;
  std::chrono::steady_clock::time_point oldest_arrival{};  // earliest arrival among waiting
  bool flush_requested = false;                            // Scheduler::flush() was called
};

class BatchPolicy {
 public:
  virtual ~BatchPolicy() = default;
  virtual PolicyKind kind() const = 0;
  // true: sequences join and leave at every step (continuous batching);
  // false: a launched batch runs to completion before the next one starts.
  virtual bool joins_every_step() const = 0;
  // How many slots of waiting sequences may start now, 0 for none.
  virtual int admit_limit(const QueueView& view,
                          std::chrono::steady_clock::time_point now) const = 0;
  // With sequences waiting and admit_limit() == 0: when a timer would let them start;
  // time_point{} when no timer applies (they wait for a running batch instead).
  virtual std::chrono::steady_clock::time_point next_timer(const QueueView& view) const = 0;
};

std::unique_ptr<BatchPolicy> make_policy(const SchedulerConfig& config);

}  // namespace tessera
