// StepPlan -> StepLayout: positions, slot mapping through block tables, CSR offsets, rows
// that reach the LM head.
#include <catch2/catch.hpp>

#include <algorithm>

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

TEST_CASE("decode batches pad to a few graph sizes", "[engine]") {
  CHECK(padded_decode_batch(1) == 1);
  CHECK(padded_decode_batch(2) == 2);
  CHECK(padded_decode_batch(3) == 4);
  CHECK(padded_decode_batch(5) == 8);
  CHECK(padded_decode_batch(9) == 16);
  CHECK(padded_decode_batch(256) == 256);
  CHECK(padded_decode_batch(257) == 288);
  for (int n = 1; n <= 600; ++n) {
    const int p = padded_decode_batch(n);
    REQUIRE(p >= n);
    REQUIRE(p - n < std::max(8, n / 8));  // never pads more than ~1/8 beyond 64 sequences
  }
}

TEST_CASE("padding a decode step appends sequences on the reserved block 0", "[engine]") {
  StepPlan plan;
  plan.seqs.push_back(seq(1, 20, 21, true, {9, 2}));
  plan.seqs.push_back(seq(2, 3, 4, true, {4}));
  plan.num_tokens = 2;
  StepLayout l = build_step_layout(plan, 16);
  REQUIRE(is_decode_only(l));
  pad_decode_step(l, 2);
  CHECK(l.tokens == std::vector<int32_t>{120, 103, 0, 0});
  CHECK(l.positions == std::vector<int32_t>{20, 3, 0, 0});
  CHECK(l.slot_mapping == std::vector<int32_t>{2 * 16 + 4, 4 * 16 + 3, 0, 0});
  CHECK(l.query_start == std::vector<int32_t>{0, 1, 2, 3, 4});
  CHECK(l.context_len == std::vector<int32_t>{21, 4, 1, 1});
  CHECK(l.block_table_start == std::vector<int32_t>{0, 2, 3, 4, 5});
  CHECK(l.block_tables == std::vector<int32_t>{9, 2, 4, 0, 0});
  CHECK(l.logit_rows == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(is_decode_only(l));

  StepPlan prefill;
  prefill.seqs.push_back(seq(3, 0, 5, true, {1}));
  prefill.num_tokens = 5;
  CHECK_FALSE(is_decode_only(build_step_layout(prefill, 16)));
}

TEST_CASE("verification steps: all draft rows yield logits; uniform ones pad to graph sizes",
          "[engine][spec]") {
  StepPlan plan;
  ScheduledSeq a = seq(1, 20, 23, true, {9, 2});  // known token 20, draft slots 21 and 22
  a.num_draft = 2;
  ScheduledSeq b = seq(2, 3, 6, true, {4});
  b.num_draft = 2;
  plan.seqs = {a, b};
  plan.num_tokens = 6;
  StepLayout l = build_step_layout(plan, 16);
  CHECK(l.logit_rows == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  CHECK(uniform_rows_per_seq(l) == 3);
  CHECK_FALSE(is_decode_only(l));
  pad_decode_step(l, 2, 3);
  CHECK(l.num_seqs() == 4);
  CHECK(uniform_rows_per_seq(l) == 3);
  CHECK(std::vector<int32_t>(l.positions.begin() + 6, l.positions.end()) ==
        std::vector<int32_t>{0, 1, 2, 0, 1, 2});
  CHECK(std::vector<int32_t>(l.slot_mapping.begin() + 6, l.slot_mapping.end()) ==
        std::vector<int32_t>{0, 1, 2, 0, 1, 2});
  CHECK(l.context_len == std::vector<int32_t>{23, 6, 3, 3});
  CHECK(l.logit_rows.size() == 12);

  // Different draft lengths: not uniform (runs without a graph).
  plan.seqs[1].num_draft = 1;
  plan.seqs[1].end = 5;
  plan.seqs[1].tokens.pop_back();
  CHECK(uniform_rows_per_seq(build_step_layout(plan, 16)) == 0);
}
