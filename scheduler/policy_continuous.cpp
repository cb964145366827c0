#include "scheduler/policy_continuous.h"

#include <algorithm>

namespace tessera {

int ContinuousPolicy::admit_limit(const QueueView& view,
                                  std::chrono::steady_clock::time_point) const {
  return std::max(0, std::min(max_num_seqs_ - view.num_running, view.num_waiting));
}

}  // namespace tessera
