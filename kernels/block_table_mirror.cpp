#include "kernels/block_table_mirror.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/error.h"

namespace tessera {
namespace {

constexpr int64_t kFree = std::numeric_limits<int64_t>::min();

int round_up(int v, int to) {
  return (v + to - 1) / to * to;
}

}  // namespace

void BlockTableMirror::resize(int slots, int stride) {
  slots_ = slots;
  stride_ = stride;
  table_.assign(static_cast<size_t>(size()), -1);
  length_.assign(static_cast<size_t>(slots), 0);
  key_.assign(static_cast<size_t>(slots), kFree);
  last_used_.assign(static_cast<size_t>(slots), 0);
  slot_of_.clear();
}

int BlockTableMirror::slot_for(int64_t key) {
  if (auto it = slot_of_.find(key); it != slot_of_.end()) return it->second;
  // A free slot, else the one named longest ago (never one named in this step).
  int best = -1;
  for (int s = 0; s < slots_; ++s) {
    if (key_[static_cast<size_t>(s)] == kFree) {
      best = s;
      break;
    }
    if (last_used_[static_cast<size_t>(s)] < step_ &&
        (best < 0 || last_used_[static_cast<size_t>(s)] < last_used_[static_cast<size_t>(best)]))
      best = s;
  }
  if (best < 0) throw Error(ErrorKind::kInternal, "block table mirror: no slot left");
  if (key_[static_cast<size_t>(best)] != kFree) slot_of_.erase(key_[static_cast<size_t>(best)]);
  key_[static_cast<size_t>(best)] = key;
  length_[static_cast<size_t>(best)] = 0;
  slot_of_.emplace(key, best);
  return best;
}

BlockTableMirror::Result BlockTableMirror::apply(std::span<const int64_t> keys,
                                                 std::span<const int32_t> table_start,
                                                 std::span<const int32_t> tables) {
  const size_t n = keys.size();
  if (table_start.size() != n + 1)
    throw Error(ErrorKind::kInternal, "block table mirror: table_start must have n + 1 entries");
  Result r;
  int longest = 0;
  for (size_t s = 0; s < n; ++s) longest = std::max(longest, table_start[s + 1] - table_start[s]);
  // Twice what this step needs, so that sequences not in it keep their rows a while.
  const int want_slots = static_cast<int>(2 * n);
  if (longest > stride_ || want_slots > slots_) {
    resize(std::max(slots_, round_up(std::max(want_slots, 64), 64)),
           std::max(stride_, round_up(std::max(longest, 1) * 2, 32)));
    r.resized = true;
  }
  ++step_;
  r.row_start.resize(n + 1, 0);
  for (size_t s = 0; s < n; ++s) {
    const int slot = slot_for(keys[s]);
    last_used_[static_cast<size_t>(slot)] = step_;
    const int32_t base = slot * stride_;
    r.row_start[s] = base;
    const std::span<const int32_t> row =
        tables.subspan(static_cast<size_t>(table_start[s]),
                       static_cast<size_t>(table_start[s + 1] - table_start[s]));
    int32_t* mine = table_.data() + base;
    int& len = length_[static_cast<size_t>(slot)];
    // Tables usually only grow; a copy-on-write or a recompute may change any entry.
    for (size_t i = 0; i < row.size(); ++i) {
      if (static_cast<int>(i) < len && mine[i] == row[i]) continue;
      mine[i] = row[i];
      r.updates.push_back({base + static_cast<int32_t>(i), row[i]});
    }
    len = std::max(len, static_cast<int>(row.size()));
  }
  return r;
}

}  // namespace tessera
