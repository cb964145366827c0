#pragma once
// StepPlan (scheduler's view: sequences, token ranges, block tables) -> StepLayout (the
// backend's view: flat token rows in CSR form over sequences).
//
//   plan.seqs:   s0 [start 5, end 8)         s1 [start 12, end 13)  (decode)
//   tokens:      t5 t6 t7                    t12
//   positions:   5  6  7                     12
//   slot:        table0[p / B] * B + p % B   table1[12 / B] * B + 12 % B
//   query_start: 0 3 4      context_len: 8 13      logit_rows: rows of sampling seqs' last token
#include "kernels/ops.h"
#include "scheduler/step_plan.h"

namespace tessera {

// Rows of the sampling sequences reach the LM head, in plan order (a sequence verifying a
// draft of k tokens: its last k + 1 rows). Throws Error(kInternal)
// if a sequence's tokens disagree with its range or its block table is too short.
StepLayout build_step_layout(const StepPlan& plan, int block_size);

// True when every sequence contributes one token and samples it: the steps a backend
// replays from CUDA graphs.
bool is_decode_only(const StepLayout& layout);

// Rows per sequence when every sequence contributes the same number of rows (at most a
// block) and every row yields logits: decode steps (1) and speculative verification steps
// with one draft length for all (k + 1). 0 otherwise. Such steps replay from CUDA graphs.
int uniform_rows_per_seq(const StepLayout& layout);

// The batch size a decode step of `num_seqs` is padded to, so that a few graph sizes cover
// every batch: 1, 2, 4, then multiples of 8 up to 256, then multiples of 32.
int padded_decode_batch(int num_seqs);

// The key (StepLayout::seq_keys) of every padding sequence: they share one table, [0].
inline constexpr int64_t kPaddingSeqKey = -1;

// Appends `count` padding sequences of `rows` tokens (token 0 at positions 0 .. rows - 1,
// written to the first slots of the reserved padding block 0 and attending only to them).
// Their logits rows come after the real ones and are ignored.
void pad_decode_step(StepLayout& layout, int count, int rows = 1);

}  // namespace tessera
