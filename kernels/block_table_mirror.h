#pragma once
// BlockTableMirror: the host's copy of block tables a backend keeps in its own memory across
// steps, so a step sends only what changed (a decode step: one entry per sequence every
// block_size tokens) instead of every table. One row of stride() ids per slot; a sequence
// keeps its slot while it appears in steps, and the least recently seen sequence's slot is
// reused when a new one needs it. Host-only logic: the backend applies the updates.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace tessera {

class BlockTableMirror {
 public:
  struct Update {
    int32_t index;  // into the slots() x stride() table
    int32_t block;
  };
  struct Result {
    std::vector<int32_t> row_start;  // per sequence: its slot * stride()
    std::vector<Update> updates;     // entries to write before the step reads the table
    bool resized = false;            // the table's shape changed: every entry is unknown
  };

  // keys[s] names sequence s (the engine's id; padding sequences may share one);
  // tables[table_start[s] .. table_start[s + 1]) is its block table this step.
  Result apply(std::span<const int64_t> keys, std::span<const int32_t> table_start,
               std::span<const int32_t> tables);

  int slots() const { return slots_; }
  int stride() const { return stride_; }
  int64_t size() const { return int64_t{slots_} * stride_; }

 private:
  int slot_for(int64_t key);
  void resize(int slots, int stride);

  int slots_ = 0;
  int stride_ = 0;
  uint64_t step_ = 0;
  std::vector<int32_t> table_;       // slots x stride, as the backend holds it
  std::vector<int32_t> length_;      // per slot: valid entries of its row
  std::vector<int64_t> key_;         // per slot; kFree when none
  std::vector<uint64_t> last_used_;  // per slot: the step that last named it
  std::unordered_map<int64_t, int> slot_of_;
};

}  // namespace tessera
