// Deterministic mode (--deterministic) and model refusal at load: on the CPU backend a row's
// logits are bitwise the same alone, in a batch of 7 and whatever the prompt's chunking; a
// model a backend cannot run is refused with its value and what is supported; the config key.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/model_needs.h"
#include "model/weights.h"
#include "server/serve_config.h"
#include "tests/unit/default_model.h"
#ifdef TESSERA_HAVE_CUDA
#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/model_support.h"
#endif

using namespace tessera;

namespace {

std::unique_ptr<test::DefaultModel> load_default(bool deterministic, int threads = 0) {
  return test::load_default_model(threads, deterministic);
}

// Sequence s owns blocks [4s, 4s + 4) of 16 tokens.
void add_seq(StepLayout& l, int s, const std::vector<int32_t>& toks, int from, int to) {
  for (int p = from; p < to; ++p) {
    l.tokens.push_back(toks[p]);
    l.positions.push_back(p);
    l.slot_mapping.push_back((4 * s + p / 16) * 16 + p % 16);
  }
  l.query_start.push_back(l.num_tokens());
  l.context_len.push_back(to);
  for (int b = 0; b < 4; ++b) l.block_tables.push_back(4 * s + b);
  l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
}

StepLayout empty_step() {
  StepLayout l;
  l.block_size = 16;
  l.query_start = {0};
  l.block_table_start = {0};
  return l;
}

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("deterministic CPU: a row's logits are bitwise equal alone and in a batch of 7",
          "[deterministic]") {
  auto m = load_default(true);
  if (!m) return;
  LlamaModel& model = *m->model;
  const size_t vocab = static_cast<size_t>(m->loaded.config.vocab_size);
  model.init_kv_cache(32, 16);
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 7; ++s) {
    std::vector<int32_t> t;
    for (int i = 0; i < 5 + 3 * s; ++i) t.push_back(100 + 37 * s + 11 * i);
    seqs.push_back(t);
  }
  // Prefill all but the last token of each, all in one step.
  StepLayout prefill = empty_step();
  for (int s = 0; s < 7; ++s) add_seq(prefill, s, seqs[s], 0, int(seqs[s].size()) - 1);
  std::vector<float> logits;
  model.forward(prefill, logits);
  // The last token of all 7 in one decode step...
  StepLayout batch = empty_step();
  for (int s = 0; s < 7; ++s) {
    add_seq(batch, s, seqs[s], int(seqs[s].size()) - 1, int(seqs[s].size()));
    batch.logit_rows.push_back(s);
  }
  std::vector<float> together;
  model.forward(batch, together);
  REQUIRE(together.size() == 7 * vocab);
  // ...and each alone (it rewrites its own K/V slot with the same values).
  for (int s = 0; s < 7; ++s) {
    StepLayout one = empty_step();
    add_seq(one, s, seqs[s], int(seqs[s].size()) - 1, int(seqs[s].size()));
    one.logit_rows = {0};
    // add_seq put the blocks of sequence s in the table; the step is that sequence alone.
    std::vector<float> alone;
    model.forward(one, alone);
    INFO("sequence " << s);
    CHECK(same_bits(alone.data(), together.data() + s * vocab, vocab));
  }
}

TEST_CASE("deterministic CPU: prompt chunking and thread count do not change the logits",
          "[deterministic]") {
  auto m = load_default(true);
  if (!m) return;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 21; ++i) prompt.push_back(300 + 7 * i);
  SequenceRunner whole(*m->model, 64, 16, 512);
  const std::vector<float> a = whole.feed(prompt);
  SequenceRunner chunked(*m->model, 64, 16, 3);
  const std::vector<float> b = chunked.feed(prompt);
  REQUIRE(a.size() == b.size());
  CHECK(same_bits(a.data(), b.data(), a.size()));

  auto single = load_default(true, 1);
  SequenceRunner one_thread(*single->model, 64, 16, 5);
  const std::vector<float> c = one_thread.feed(prompt);
  CHECK(same_bits(a.data(), c.data(), a.size()));
}

TEST_CASE("a model the CPU backend cannot run is refused with its value", "[deterministic]") {
  auto ops = make_cpu_ops(1);
  ModelNeeds n;
  n.model = "odd.gguf";
  n.hidden_size = 126;
  n.num_heads = 2;
  n.num_kv_heads = 2;
  n.head_dim = 63;
  CHECK_FALSE(ops->unsupported_reason(n).empty());
  try {
    ops->check_supported(n);
    FAIL("an odd head_dim was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    const std::string what = e.what();
    CHECK(what.find("odd.gguf") != std::string::npos);
    CHECK(what.find("head_dim 63") != std::string::npos);
  }
  n.head_dim = 64;
  n.weight_formats.push_back({DType::kQ4_1, QuantScheme{}, "blk.0.ffn_down.weight", 100});
  const std::string why = ops->unsupported_reason(n);
  CHECK(why.find("blk.0.ffn_down.weight") != std::string::npos);
}

TEST_CASE("the default model's needs pass the CPU check", "[deterministic]") {
  auto m = load_default(false, 1);
  if (!m) return;
  const ModelNeeds n = model_needs("default", m->loaded.config, m->loaded.weights);
  CHECK(n.head_dim == 64);
  CHECK_FALSE(n.weight_formats.empty());
  CHECK(m->ops->unsupported_reason(n).empty());
#ifdef TESSERA_HAVE_CUDA
  CHECK(cuda::unsupported_reason(n, true).empty());
  ModelNeeds big = n;
  big.head_dim = 96;
  const std::string why = cuda::unsupported_reason(big, false);
  CHECK(why.find("head_dim 96") != std::string::npos);
  CHECK(why.find("64 and 128") != std::string::npos);
#endif
}

TEST_CASE("serve config: deterministic key", "[deterministic]") {
  ServeConfig c;
  CHECK_FALSE(c.engine.deterministic);
  apply_serve_json(c, nlohmann::json::parse(R"({"deterministic": true})"));
  CHECK(c.engine.deterministic);
}

#ifdef TESSERA_HAVE_CUDA
// The deterministic attention plan (host code, no GPU): a row's splits cover the same
// positions whatever else is in the step and however its prompt was chunked.
TEST_CASE("deterministic attention plan: a row's splits do not depend on the batch",
          "[deterministic]") {
  cuda::AttentionPlanOptions o;
  o.group_size = 3;
  o.num_kv_heads = 3;
  o.fixed_kv_chunk = cuda::deterministic_kv_chunk(8192);
  CHECK(o.fixed_kv_chunk == 1024);
  CHECK(cuda::deterministic_kv_chunk(1 << 20) == (1 << 20) / 64);
  // Decode of a sequence at context 2500, alone and after 31 others / a 40-token chunk.
  auto splits_of = [&](const StepLayout& l, int seq) {
    const cuda::AttentionPlan p = cuda::plan_attention(l, o);
    CHECK(p.decode.items.empty());
    std::vector<std::pair<int, int>> ranges;
    for (const auto& it : p.prefill.items) {
      if (it.seq == seq && it.row_start == 0) ranges.push_back({it.kv_start, it.kv_end});
    }
    return ranges;
  };
  StepLayout alone = empty_step();
  alone.query_start = {0, 1};
  alone.context_len = {2500};
  alone.tokens = {1};
  StepLayout batch = empty_step();
  for (int s = 0; s < 32; ++s) {
    batch.query_start.push_back(s + 1);
    batch.context_len.push_back(s == 31 ? 2500 : 100 + 50 * s);
  }
  const auto a = splits_of(alone, 0);
  const auto b = splits_of(batch, 31);
  CHECK(a == b);
  REQUIRE(a.size() == 3);
  CHECK(a[0] == std::pair{0, 1024});
  CHECK(a[2] == std::pair{2048, 2500});
}
#endif
