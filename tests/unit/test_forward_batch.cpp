// One forward step over several sequences at different positions (mixed prefill and
// decode) must give each sequence the logits it gets when run alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "engine/simple_generate.h"
#include "engine/step_layout.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"
#include "tests/unit/default_model.h"

using namespace tessera;

namespace {

using test::load_default_model;

}  // namespace

TEST_CASE("mixed prefill + decode batch equals sequences run alone", "[forward]") {
  auto m = load_default_model();
  if (!m) return;
  LlamaModel& model = *m->model;
  const int vocab = m->loaded.config.vocab_size;
  const std::vector<std::vector<int32_t>> seqs = {
      {504, 3575, 282, 4649, 314},
      {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
      {9690, 42, 17, 28, 1000, 2000}};
  // Alone: logits after every sequence's full text.
  std::vector<std::vector<float>> alone;
  for (const auto& s : seqs) {
    SequenceRunner r(model, 64);
    alone.push_back(r.feed(s));
  }
  // Together: sequence 0 and 1 have their prefix (all but the last 1 / 7 tokens) cached
  // from a first step; the second step decodes one token of seq 0, prefills the last 7 of
  // seq 1 and all of seq 2.
  const int bs = 16;
  model.init_kv_cache(20, bs);
  const std::vector<std::vector<int32_t>> tables = {{5, 2}, {9, 17, 3}, {11, 1}};
  auto add = [&](StepLayout& l, int s, int from, int to) {
    for (int p = from; p < to; ++p) {
      l.tokens.push_back(seqs[s][p]);
      l.positions.push_back(p);
      l.slot_mapping.push_back(tables[s][p / bs] * bs + p % bs);
    }
    l.query_start.push_back(l.num_tokens());
    l.context_len.push_back(to);
    l.block_tables.insert(l.block_tables.end(), tables[s].begin(), tables[s].end());
    l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
  };
  auto fresh = [] {
    StepLayout l;
    l.block_size = 16;
    l.query_start = {0};
    l.block_table_start = {0};
    return l;
  };
  StepLayout first = fresh();
  add(first, 0, 0, 4);
  add(first, 1, 0, 11);
  std::vector<float> logits;
  model.forward(first, logits);
  CHECK(logits.empty());
  StepLayout second = fresh();
  add(second, 0, 4, 5);
  add(second, 1, 11, 18);
  add(second, 2, 0, 6);
  second.logit_rows = {0, 7, 13};
  model.forward(second, logits);
  REQUIRE(logits.size() == 3u * vocab);
  for (int s = 0; s < 3; ++s) {
    double diff = 0.0, mag = 0.0;
    for (int i = 0; i < vocab; ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(logits[s * vocab + i] - alone[s][i])));
      mag = std::max(mag, static_cast<double>(std::abs(alone[s][i])));
    }
    INFO("sequence " << s);
    CHECK(diff / mag < 1e-5);
  }
}

TEST_CASE("padding sequences on block 0 leave a decode step's real rows unchanged", "[forward]") {
  auto m = load_default_model();
  if (!m) return;
  LlamaModel& model = *m->model;
  const int vocab = m->loaded.config.vocab_size;
  model.init_kv_cache(8, 16);
  // Prefill two sequences (blocks 3 and 5), then decode one token of each, unpadded and
  // padded to 8 (the padding writes and reads only block 0).
  StepLayout prefill;
  prefill.block_size = 16;
  prefill.tokens = {504, 3575, 282, 9690, 42};
  prefill.positions = {0, 1, 2, 0, 1};
  prefill.slot_mapping = {48, 49, 50, 80, 81};
  prefill.query_start = {0, 3, 5};
  prefill.context_len = {3, 2};
  prefill.block_table_start = {0, 1, 2};
  prefill.block_tables = {3, 5};
  std::vector<float> logits;
  model.forward(prefill, logits);
  StepLayout decode;
  decode.block_size = 16;
  decode.tokens = {4649, 17};
  decode.positions = {3, 2};
  decode.slot_mapping = {51, 82};
  decode.query_start = {0, 1, 2};
  decode.context_len = {4, 3};
  decode.block_table_start = {0, 1, 2};
  decode.block_tables = {3, 5};
  decode.logit_rows = {0, 1};
  std::vector<float> plain, padded;
  model.forward(decode, plain);
  pad_decode_step(decode, 6);
  model.forward(decode, padded);
  REQUIRE(padded.size() == 8u * vocab);
  for (int i = 0; i < 2 * vocab; ++i) REQUIRE(padded[i] == Approx(plain[i]).margin(1e-4));
}

TEST_CASE("two models on one Ops keep KV caches of their own", "[forward][kv]") {
  // A target and a draft model share the backend; each owns its cache, so interleaving
  // their steps (same block ids in both) changes neither's logits.
  auto m = load_default_model();
  if (!m) return;
  LlamaModel draft(m->loaded.config, m->loaded.weights, *m->ops);
  const std::vector<int32_t> a = {504, 3575, 282, 4649, 314, 28, 1000};
  const std::vector<int32_t> b = {9690, 42, 17, 28, 1000, 2000, 5, 6, 7};
  std::vector<float> alone_a, alone_b;
  {
    SequenceRunner r(*m->model, 64);
    alone_a = r.feed(a);
  }
  {
    SequenceRunner r(draft, 64);
    alone_b = r.feed(b);
  }
  SequenceRunner ra(*m->model, 64), rb(draft, 64);
  ra.feed(std::span<const int32_t>(a).first(3));
  rb.feed(std::span<const int32_t>(b).first(5));
  const std::vector<float> got_a = ra.feed(std::span<const int32_t>(a).subspan(3));
  const std::vector<float> got_b = rb.feed(std::span<const int32_t>(b).subspan(5));
  CHECK(got_a == alone_a);
  CHECK(got_b == alone_b);
}

TEST_CASE("an fp8 or int8 KV cache keeps the logits close to the f32 one", "[forward][kv8]") {
  auto m = load_default_model();
  if (!m) return;
  LlamaModel& model = *m->model;
  StepLayout l;
  l.block_size = 16;
  l.tokens = {504, 3575, 282, 4649, 314, 28, 1000, 2000, 17, 42, 9690, 5, 6, 7, 8, 9, 10, 11};
  const int t = static_cast<int>(l.tokens.size());
  for (int i = 0; i < t; ++i) {
    l.positions.push_back(i);
    l.slot_mapping.push_back(16 + i);  // blocks 1 and 2
  }
  l.query_start = {0, t};
  l.context_len = {t};
  l.block_table_start = {0, 2};
  l.block_tables = {1, 2};
  l.logit_rows = {t - 1};
  std::vector<float> ref;
  model.init_kv_cache(4, 16, KvDtype::kF32);
  model.forward(l, ref);
  for (const KvDtype dt : {KvDtype::kFp8, KvDtype::kInt8}) {
    model.init_kv_cache(4, 16, dt);
    CHECK(model.kv_cache().dtype() == dt);
    CHECK(model.kv_bytes_per_token(dt) < model.kv_bytes_per_token(KvDtype::kF32) / 3);
    std::vector<float> got;
    model.forward(l, got);
    double diff = 0.0, mag = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(got[i] - ref[i])));
      mag = std::max(mag, static_cast<double>(std::abs(ref[i])));
    }
    INFO(kv_dtype_name(dt) << " max |diff| / max |logit| = " << diff / mag);
    CHECK(diff / mag < (dt == KvDtype::kFp8 ? 0.08 : 0.02));
    CHECK(std::max_element(got.begin(), got.end()) - got.begin() ==
          std::max_element(ref.begin(), ref.end()) - ref.begin());
  }
}
