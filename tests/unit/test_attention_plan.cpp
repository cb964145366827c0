// The CUDA decode attention plan (host code, no GPU needed): how far a decode step's cached
// ranges are split. Short contexts are not split (no merge launch); longer ones split in
// powers of two up to what fills the GPU, the same count for every sequence of the step.
#include <catch2/catch.hpp>

#ifdef TESSERA_HAVE_CUDA
#include <vector>

#include "kernels/cuda/attention_plan.h"

using namespace tessera;

namespace {

cuda::AttentionPlan decode_plan(const std::vector<int>& contexts, int query_len = 1) {
  StepLayout l;
  l.block_size = 16;
  l.query_start = {0};
  l.block_table_start = {0};
  for (int c : contexts) {
    for (int t = 0; t < query_len; ++t) l.tokens.push_back(1);
    l.query_start.push_back(static_cast<int>(l.tokens.size()));
    l.context_len.push_back(c);
  }
  cuda::AttentionPlanOptions o;
  o.group_size = 3;
  o.num_kv_heads = 3;
  return cuda::plan_attention(l, o);
}

}  // namespace

TEST_CASE("decode attention splits as far as the longest context needs", "[attention]") {
  auto p = decode_plan({200});
  CHECK(p.decode.items.size() == 1);
  CHECK(p.decode.merges.empty());
  CHECK(p.prefill.items.empty());

  p = decode_plan({300});  // 2 chunks of at least 256 tokens
  CHECK(p.decode.items.size() == 2);
  REQUIRE(p.decode.merges.size() == 1);
  CHECK(p.decode.merges[0].num_splits == 2);

  p = decode_plan({1000});  // 4
  CHECK(p.decode.items.size() == 4);

  p = decode_plan({3000});  // 12 chunks -> 16 (a power of two: few distinct graphs)
  CHECK(p.decode.items.size() == 16);

  p = decode_plan({100000});  // capped by one wave of the GPU: 64
  CHECK(p.decode.items.size() == 64);

  // Every sequence of a step gets the longest one's count; the short one's extra items are
  // empty ranges.
  p = decode_plan({200, 3000});
  CHECK(p.decode.items.size() == 32);
  CHECK(p.decode.merges.size() == 2);
  int covered = 0;
  for (const auto& it : p.decode.items)
    if (it.seq == 0) covered += it.kv_end - it.kv_start;
  CHECK(covered == 200);

  // A step verifying 4 drafts (5 query rows) cuts its range where a plain decode step cuts.
  std::vector<std::pair<int, int>> plain, verify;
  for (const auto& it : decode_plan({700}).decode.items) plain.push_back({it.kv_start, it.kv_end});
  for (const auto& it : decode_plan({704}, 5).decode.items)
    verify.push_back({it.kv_start, it.kv_end});
  REQUIRE(plain.size() == 4);
  REQUIRE(verify.size() == 4);
  CHECK(plain[0] == verify[0]);
  CHECK(plain[1] == verify[1]);
  CHECK(plain[2] == std::pair{512, 700});
  CHECK(verify[2] == std::pair{512, 704});
}
#endif
