#include "scheduler/policy_dynamic.h"

#include <algorithm>

namespace tessera {

int DynamicPolicy::admit_limit(const QueueView& view,
                               std::chrono::steady_clock::time_point now) const {
  if (view.num_running > 0 || view.num_waiting == 0) return 0;  // run to completion
  const bool full = view.num_waiting >= max_batch_;
  const bool delay_expired = now - view.oldest_arrival >= max_queue_delay_;
  if (!full && !delay_expired) return 0;
  return std::min(max_batch_, view.num_waiting);
}

std::chrono::steady_clock::time_point DynamicPolicy::next_timer(const QueueView& view) const {
  if (view.num_running > 0 || view.num_waiting == 0) return {};
  return view.oldest_arrival + max_queue_delay_;
}

}  // namespace tessera
