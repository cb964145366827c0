// StepPlan -> StepLayout: positions, slot mapping through block tables, CSR offsets, rows
// that reach the LM head.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "engine/step_layout.h"

using namespace tessera;

namespace {

ScheduledSeq seq(SeqId id, int start, int end, bool sample, std::vector<BlockId> table) {
  ScheduledSeq s;
  s.id = id;
  s.start = start;
  s.end = end;
  s.sample = sample;
  for (int p = start; p < end; ++p) s.tokens.push_back(100 + p);
  s.block_table = std::move(table);
  return s;
}

}  // namespace

TEST_CASE("a mixed prefill chunk and decode map to CSR rows and paged slots", "[engine]") {
  StepPlan plan;
  plan.seqs.push_back(seq(1, 11, 13, false, {9, 2, 7, 8}));  // a chunk that does not sample
  plan.seqs.push_back(seq(2, 3, 6, true, {4, 5}));           // prefill chunk ending at known
  plan.seqs.push_back(seq(3, 0, 1, true, {6}));
  plan.num_tokens = 6;
  const StepLayout l = build_step_layout(plan, 4);
  CHECK(l.block_size == 4);
  CHECK(l.tokens == std::vector<int32_t>{111, 112, 103, 104, 105, 100});
  CHECK(l.positions == std::vector<int32_t>{11, 12, 3, 4, 5, 0});
  // p=11 -> table[2]=7, offset 3; p=12 -> table[3]=8, offset 0; p=3 -> table[0]=4, offset 3.
  CHECK(l.slot_mapping == std::vector<int32_t>{31, 32, 19, 20, 21, 24});
  CHECK(l.query_start == std::vector<int32_t>{0, 2, 5, 6});
  CHECK(l.context_len == std::vector<int32_t>{13, 6, 1});
  CHECK(l.block_table_start == std::vector<int32_t>{0, 4, 6, 7});
  CHECK(l.block_tables == std::vector<int32_t>{9, 2, 7, 8, 4, 5, 6});
  CHECK(l.num_tokens() == 6);
  CHECK(l.num_seqs() == 3);
  CHECK(l.logit_rows == std::vector<int32_t>{4, 5});
}

TEST_CASE("a plan with a short block table or wrong token count is an error", "[engine]") {
  StepPlan plan;
  plan.seqs.push_back(seq(1, 0, 5, true, {3}));  // 5 tokens need 2 blocks of 4
  CHECK_THROWS_AS(build_step_layout(plan, 4), Error);
  StepPlan plan2;
  plan2.seqs.push_back(seq(1, 0, 3, true, {3}));
  plan2.seqs[0].tokens.pop_back();
  CHECK_THROWS_AS(build_step_layout(plan2, 4), Error);
  CHECK(build_step_layout(StepPlan{}, 16).num_tokens() == 0);
}
