#include "scheduler/policy_static.h"

#include <algorithm>

namespace tessera {

int StaticPolicy::admit_limit(const QueueView& view,
                              std::chrono::steady_clock::time_point now) const {
  if (view.num_running > 0 || view.num_waiting == 0) return 0;  // run to completion
  const bool full = view.num_waiting >= batch_size_;
  const bool timed_out = now - view.oldest_arrival >= flush_timeout_;
  if (!full && !timed_out && !view.flush_requested) return 0;
  return std::min(batch_size_, view.num_waiting);
}

std::chrono::steady_clock::time_point StaticPolicy::next_timer(const QueueView& view) const {
  if (view.num_running > 0 || view.num_waiting == 0) return {};
  return view.oldest_arrival + flush_timeout_;
}

}  // namespace tessera
