#pragma once
// Whole-model GPU checks: the layout of one sequence's step (the tokens from `start` on,
// blocks 1.. in order, logits for the last row) and the argmax of a logits row.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace tessera::gpucheck {

inline StepLayout single_seq_step(const std::vector<int32_t>& tokens, int start, int block) {
  StepLayout l;
  l.block_size = block;
  const int n = static_cast<int>(tokens.size()) - start, ctx = static_cast<int>(tokens.size());
  for (int t = 0; t < n; ++t) {
    const int pos = start + t;
    l.tokens.push_back(tokens[pos]);
    l.positions.push_back(pos);
    l.slot_mapping.push_back((1 + pos / block) * block + pos % block);
  }
  l.query_start = {0, n};
  l.context_len = {ctx};
  l.block_table_start = {0, (ctx + block - 1) / block};
  for (int b = 0; b < (ctx + block - 1) / block; ++b) l.block_tables.push_back(1 + b);
  l.logit_rows = {n - 1};
  return l;
}

inline int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace tessera::gpucheck
