#include "kernels/cpu/step_check.h"

#include <string>

#include "common/error.h"

namespace tessera::cpu {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, "invalid step layout: " + what);
}

}  // namespace

void check_step_layout(const StepLayout& l, int num_blocks, int block_size) {
  const size_t t = l.tokens.size();
  const int s = l.num_seqs();
  if (t == 0) bad("no tokens");
  if (l.block_size != block_size) {
    bad("block_size " + std::to_string(l.block_size) + " != KV cache block size " +
        std::to_string(block_size));
  }
  if (l.positions.size() != t || l.slot_mapping.size() != t) {
    bad("positions/slot_mapping must have one entry per token");
  }
  if (l.query_start.size() != static_cast<size_t>(s) + 1 ||
      l.block_table_start.size() != static_cast<size_t>(s) + 1) {
    bad("query_start and block_table_start need num_seqs + 1 entries");
  }
  if (l.query_start.front() != 0 || l.query_start.back() != static_cast<int32_t>(t)) {
    bad("query_start must run from 0 to num_tokens");
  }
  if (l.block_table_start.front() != 0 ||
      l.block_table_start.back() != static_cast<int32_t>(l.block_tables.size())) {
    bad("block_table_start must run from 0 to block_tables.size()");
  }
  const int64_t capacity = static_cast<int64_t>(num_blocks) * block_size;
  for (int i = 0; i < s; ++i) {
    const int q0 = l.query_start[i], q1 = l.query_start[i + 1];
    const int b0 = l.block_table_start[i], b1 = l.block_table_start[i + 1];
    if (q1 < q0 || b1 < b0) bad("query_start / block_table_start must not decrease");
    const int ctx = l.context_len[i];
    if (ctx < 1) bad("sequence " + std::to_string(i) + " has context_len < 1");
    if (static_cast<int64_t>(b1 - b0) * block_size < ctx) {
      bad("sequence " + std::to_string(i) + " has too few blocks for context_len " +
          std::to_string(ctx));
    }
    for (int b = b0; b < b1; ++b) {
      if (l.block_tables[b] < 0 || l.block_tables[b] >= num_blocks) {
        bad("block id " + std::to_string(l.block_tables[b]) + " outside the pool");
      }
    }
    for (int r = q0; r < q1; ++r) {
      if (l.positions[r] < 0 || l.positions[r] >= ctx) {
        bad("token " + std::to_string(r) + " position " + std::to_string(l.positions[r]) +
            " outside its sequence's context [0, " + std::to_string(ctx) + ")");
      }
    }
  }
  for (size_t r = 0; r < t; ++r) {
    if (l.slot_mapping[r] >= capacity)
      bad("slot " + std::to_string(l.slot_mapping[r]) + " outside the pool");
  }
  for (const int32_t r : l.logit_rows) {
    if (r < 0 || static_cast<size_t>(r) >= t)
      bad("logit row " + std::to_string(r) + " out of range");
  }
}

}  // namespace tessera::cpu
