#include "engine/step_layout.h"

#include <string>

#include "common/error.h"

namespace tessera {

StepLayout build_step_layout(const StepPlan& plan, int block_size) {
  StepLayout layout;
  layout.block_size = block_size;
  layout.tokens.reserve(static_cast<size_t>(plan.num_tokens));
  layout.positions.reserve(static_cast<size_t>(plan.num_tokens));
  layout.slot_mapping.reserve(static_cast<size_t>(plan.num_tokens));
  layout.query_start.push_back(0);
  layout.block_table_start.push_back(0);
  for (const ScheduledSeq& s : plan.seqs) {
    if (s.num_tokens() <= 0 || static_cast<int>(s.tokens.size()) != s.num_tokens())
      throw Error(ErrorKind::kInternal, "step plan: sequence " + std::to_string(s.id) +
                                            " has range [" + std::to_string(s.start) + ", " +
                                            std::to_string(s.end) + ") but " +
                                            std::to_string(s.tokens.size()) + " tokens");
    const auto needed = static_cast<size_t>((s.end + block_size - 1) / block_size);
    if (s.block_table.size() < needed)
      throw Error(ErrorKind::kInternal, "step plan: sequence " + std::to_string(s.id) + " needs " +
                                            std::to_string(needed) + " blocks for " +
                                            std::to_string(s.end) + " tokens, has " +
                                            std::to_string(s.block_table.size()));
    for (int p = s.start; p < s.end; ++p) {
      layout.tokens.push_back(s.tokens[static_cast<size_t>(p - s.start)]);
      layout.positions.push_back(p);
      const BlockId block = s.block_table[static_cast<size_t>(p / block_size)];
      layout.slot_mapping.push_back(block * block_size + p % block_size);
    }
    layout.query_start.push_back(static_cast<int32_t>(layout.tokens.size()));
    layout.context_len.push_back(s.end);
    layout.seq_keys.push_back(s.id);
    layout.block_tables.insert(layout.block_tables.end(), s.block_table.begin(),
                               s.block_table.end());
    layout.block_table_start.push_back(static_cast<int32_t>(layout.block_tables.size()));
    const auto end_row = static_cast<int32_t>(layout.tokens.size());
    for (int32_t r = end_row - s.num_logit_rows(); r < end_row; ++r) layout.logit_rows.push_back(r);
  }
  return layout;
}

bool is_decode_only(const StepLayout& layout) {
  const int n = layout.num_seqs();
  return n > 0 && layout.num_tokens() == n && static_cast<int>(layout.logit_rows.size()) == n;
}

int padded_decode_batch(int num_seqs) {
  if (num_seqs <= 1) return 1;
  if (num_seqs <= 2) return 2;
  if (num_seqs <= 4) return 4;
  if (num_seqs <= 256) return (num_seqs + 7) / 8 * 8;
  return (num_seqs + 31) / 32 * 32;
}

int uniform_rows_per_seq(const StepLayout& layout) {
  const int n = layout.num_seqs(), t = layout.num_tokens();
  if (n == 0 || t % n != 0 || static_cast<int>(layout.logit_rows.size()) != t) return 0;
  const int q = t / n;
  if (q > layout.block_size) return 0;
  for (int i = 0; i < n; ++i)
    if (layout.query_start[i + 1] - layout.query_start[i] != q) return 0;
  return q;
}

void pad_decode_step(StepLayout& layout, int count, int rows) {
  for (int i = 0; i < count; ++i) {
    const auto first = static_cast<int32_t>(layout.tokens.size());
    for (int r = 0; r < rows; ++r) {
      layout.tokens.push_back(0);
      layout.positions.push_back(r);
      layout.slot_mapping.push_back(r);
      layout.logit_rows.push_back(first + r);
    }
    layout.query_start.push_back(first + rows);
    layout.context_len.push_back(rows);
    layout.block_tables.push_back(0);
    layout.block_table_start.push_back(static_cast<int32_t>(layout.block_tables.size()));
    if (!layout.seq_keys.empty()) layout.seq_keys.push_back(kPaddingSeqKey);
  }
}

}  // namespace tessera
