// Paged attention of the CPU backend against an fp64 reference: shuffled block tables,
// GQA ratios 1/4/8, odd lengths, sliding windows, and mixed prefill + decode steps.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/ops.h"
#include "test_cpu_ops_util.h"

using namespace tessera;

namespace {

// fp64 softmax attention of one query head over keys [first, last] of a sequence.
void ref_attend(const std::vector<double>& q, const std::vector<std::vector<double>>& keys,
                const std::vector<std::vector<double>>& vals, int first, int last, double scale,
                std::vector<double>& out) {
  std::vector<double> s;
  double m = -1e300;
  for (int p = first; p <= last; ++p) {
    double d = 0.0;
    for (size_t i = 0; i < q.size(); ++i) d += q[i] * keys[p][i];
    s.push_back(d * scale);
    m = std::max(m, s.back());
  }
  double z = 0.0;
  for (auto& x : s) z += (x = std::exp(x - m));
  out.assign(q.size(), 0.0);
  for (int p = first; p <= last; ++p)
    for (size_t i = 0; i < q.size(); ++i) out[i] += s[p - first] / z * vals[p][i];
}

struct Seq {
  int ctx;      // context length after this step
  int num_new;  // query rows this step (the last num_new positions)
  std::vector<int32_t> blocks;
};

// Builds a pool with random K/V for every position of every sequence (blocks shuffled across
// sequences), runs cpu::paged_attention, and returns max |err| against fp64.
// kv_dtype kFp8 / kInt8 stores through the 8-bit path (per-row scales); the reference still
// uses the unrounded K/V, so the error then measures the cache's rounding too.
double run_case(int heads, int kv_heads, int hd, int block_size, int window, std::vector<Seq> seqs,
                std::mt19937& rng, KvDtype kv_dtype = KvDtype::kF32) {
  const int num_blocks = 1 + std::accumulate(seqs.begin(), seqs.end(), 0, [&](int a, const Seq& s) {
                           return a + (s.ctx + block_size - 1) / block_size;
                         });
  std::vector<int32_t> ids(num_blocks - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  const int row = kv_heads * hd;
  const size_t slots_total = static_cast<size_t>(num_blocks) * block_size;
  std::vector<float> kpool(slots_total * row, NAN);
  std::vector<float> vpool(kpool.size(), NAN);
  std::vector<float> kscale(slots_total * kv_heads, NAN), vscale(kscale.size(), NAN);
  cpu::PagedKv kv;
  kv.dtype = kv_dtype;
  kv.k = kpool.data();  // an 8-bit cache uses the first quarter of these bytes
  kv.v = vpool.data();
  kv.k_scale = kscale.data();
  kv.v_scale = vscale.data();
  kv.block_size = block_size;
  kv.num_kv_heads = kv_heads;
  kv.head_dim = hd;
  StepLayout l;
  l.block_size = block_size;
  l.query_start = {0};
  l.block_table_start = {0};
  // keys[s][kvh][pos] as fp64
  std::vector<std::vector<std::vector<std::vector<double>>>> K(seqs.size()), V(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    Seq& sq = seqs[s];
    const int nb = (sq.ctx + block_size - 1) / block_size;
    for (int b = 0; b < nb; ++b) sq.blocks.push_back(ids[next++]);
    K[s].assign(kv_heads, {});
    V[s].assign(kv_heads, {});
    for (int p = 0; p < sq.ctx; ++p) {
      const auto k = test::random_floats(rng, row, -2.0f, 2.0f);
      const auto v = test::random_floats(rng, row);
      const int32_t slot = sq.blocks[p / block_size] * block_size + p % block_size;
      const int32_t slots[] = {slot};
      cpu::store_kv(kv, k.data(), v.data(), slots);
      for (int h = 0; h < kv_heads; ++h) {
        K[s][h].emplace_back(k.begin() + h * hd, k.begin() + (h + 1) * hd);
        V[s][h].emplace_back(v.begin() + h * hd, v.begin() + (h + 1) * hd);
      }
    }
    for (int p = sq.ctx - sq.num_new; p < sq.ctx; ++p) {
      l.tokens.push_back(0);
      l.positions.push_back(p);
      l.slot_mapping.push_back(sq.blocks[p / block_size] * block_size + p % block_size);
    }
    l.query_start.push_back(static_cast<int32_t>(l.tokens.size()));
    l.context_len.push_back(sq.ctx);
    l.block_tables.insert(l.block_tables.end(), sq.blocks.begin(), sq.blocks.end());
    l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
  }
  const int t = l.num_tokens();
  const auto q = test::random_floats(rng, static_cast<size_t>(t) * heads * hd, -2.0f, 2.0f);
  std::vector<float> out(q.size(), NAN);
  const AttentionParams attn{heads, kv_heads, hd, 1.0f / std::sqrt(static_cast<float>(hd)), window};
  cpu::ThreadPool pool(2);
  cpu::paged_attention(pool, kv, l, attn, q.data(), out.data());
  double worst = 0.0;
  const int group = heads / kv_heads;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int r = l.query_start[s]; r < l.query_start[s + 1]; ++r) {
      const int pos = l.positions[r];
      const int first = window > 0 ? std::max(0, pos - window + 1) : 0;
      for (int h = 0; h < heads; ++h) {
        std::vector<double> qh(hd), ref;
        for (int i = 0; i < hd; ++i) qh[i] = q[(r * heads + h) * hd + i];
        ref_attend(qh, K[s][h / group], V[s][h / group], first, pos, attn.scale, ref);
        for (int i = 0; i < hd; ++i)
          worst = std::max(worst, std::abs(out[(r * heads + h) * hd + i] - ref[i]));
      }
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("cpu paged attention matches fp64 for GQA ratios 1, 4, 8", "[cpu_ops]") {
  std::mt19937 rng(11);
  for (const int group : {1, 4, 8}) {
    for (const int hd : {64, 40}) {
      const int kv_heads = 2;
      // decode (1 new row), odd prefill chunks, a chunk continuing a cached prefix
      const std::vector<Seq> seqs = {
          {1, 1, {}}, {17, 1, {}}, {33, 33, {}}, {100, 7, {}}, {129, 1, {}}};
      INFO("group " << group << " head_dim " << hd);
      CHECK(run_case(group * kv_heads, kv_heads, hd, 16, 0, seqs, rng) < 1e-5);
    }
  }
}

TEST_CASE("cpu paged attention with odd block size and sliding window", "[cpu_ops]") {
  std::mt19937 rng(12);
  const std::vector<Seq> seqs = {{23, 23, {}}, {70, 1, {}}, {9, 2, {}}};
  CHECK(run_case(4, 1, 64, 5, 0, seqs, rng) < 1e-5);
  for (const int window : {1, 4, 16, 1000}) {
    INFO("window " << window);
    CHECK(run_case(8, 2, 64, 16, window, seqs, rng) < 1e-5);
  }
}

TEST_CASE("cpu paged attention over an fp8 or int8 KV cache stays near fp64", "[cpu_ops][kv8]") {
  // Values in [-2, 2]: e4m3 keeps 3 mantissa bits (half a step is 1/16 of a value at worst,
  // so up to 0.125 here), int8 1/254 of the row's largest magnitude. The attention output
  // averages many values, so its error is well below the per-element one.
  std::mt19937 rng(13);
  const std::vector<Seq> seqs = {{1, 1, {}}, {40, 1, {}}, {33, 33, {}}, {129, 3, {}}};
  for (const KvDtype t : {KvDtype::kFp8, KvDtype::kInt8}) {
    INFO(kv_dtype_name(t));
    const double err = run_case(8, 2, 64, 16, 0, seqs, rng, t);
    CHECK(err < (t == KvDtype::kFp8 ? 0.1 : 0.01));
    CHECK(err > 1e-6);  // it really went through the 8-bit store
    CHECK(run_case(4, 1, 40, 5, 8, seqs, rng, t) < (t == KvDtype::kFp8 ? 0.1 : 0.01));
  }
}

TEST_CASE("mixed prefill and decode steps through Ops match full attention", "[cpu_ops]") {
  // Three sequences over four steps: prefill in chunks, decode, a late joiner. After each
  // step every query row is compared with fp64 attention over all keys so far (rope applied
  // by the same fp64 definition), so a wrong slot, block or position shows up.
  const int heads = 8, kv_heads = 2, hd = 32, bs = 4;
  auto ops = make_cpu_ops(2);
  auto kv = ops->make_kv_cache({2, 40, bs, kv_heads, hd, KvDtype::kF32});
  std::mt19937 rng(13);
  RopeConfig rope;
  rope.neox = false;
  const auto inv = cpu::rope_inv_freq(rope, hd);
  const std::vector<std::vector<int32_t>> tables = {
      {7, 3, 12, 1, 30, 22}, {5, 9, 2, 33, 14}, {39, 6, 18, 25, 11}};
  // per step: (sequence, number of new tokens)
  const std::vector<std::vector<std::pair<int, int>>> steps = {
      {{0, 9}, {1, 3}}, {{0, 1}, {1, 6}, {2, 5}}, {{0, 1}, {1, 1}, {2, 1}}, {{2, 11}, {0, 1}}};
  std::vector<int> len(3, 0);
  std::vector<std::vector<std::vector<double>>> K(3), V(3);  // [seq][pos] -> kv_heads*hd
  const float scale = 0.17f;
  for (const auto& step : steps) {
    StepLayout l;
    l.block_size = bs;
    l.query_start = {0};
    l.block_table_start = {0};
    for (const auto& [s, n] : step) {
      for (int p = len[s]; p < len[s] + n; ++p) {
        l.tokens.push_back(0);
        l.positions.push_back(p);
        l.slot_mapping.push_back(tables[s][p / bs] * bs + p % bs);
      }
      len[s] += n;
      l.query_start.push_back(l.num_tokens());
      l.context_len.push_back(len[s]);
      l.block_tables.insert(l.block_tables.end(), tables[s].begin(), tables[s].end());
      l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
    }
    const int t = l.num_tokens();
    auto q = test::random_floats(rng, t * heads * hd);
    auto k = test::random_floats(rng, t * kv_heads * hd);
    const auto v = test::random_floats(rng, t * kv_heads * hd);
    // fp64 rotated copies
    std::vector<std::vector<double>> rq(t);
    for (int r = 0; r < t; ++r) {
      const double p = l.positions[r];
      auto rot = [&](const float* src, int nh) {
        std::vector<double> x(src, src + nh * hd);
        for (int h = 0; h < nh; ++h)
          for (int i = 0; i < hd / 2; ++i) {
            const double c = std::cos(p * inv[i]), sn = std::sin(p * inv[i]);
            const double a = x[h * hd + 2 * i], b = x[h * hd + 2 * i + 1];
            x[h * hd + 2 * i] = a * c - b * sn;
            x[h * hd + 2 * i + 1] = a * sn + b * c;
          }
        return x;
      };
      rq[r] = rot(q.data() + r * heads * hd, heads);
      int s = 0;
      while (l.query_start[s + 1] <= r) ++s;
      K[step[s].first].push_back(rot(k.data() + r * kv_heads * hd, kv_heads));
      V[step[s].first].emplace_back(v.begin() + r * kv_heads * hd,
                                    v.begin() + (r + 1) * kv_heads * hd);
    }
    ops->begin_step(l, *kv);
    const AttentionParams attn{heads, kv_heads, hd, scale, 0};
    std::vector<float> out(q.size());
    for (int layer = 0; layer < 2; ++layer) {  // layer 1 holds the same data: pools must not mix
      auto ql = q, kl = k;
      ops->rope_store_kv(*kv, ql.data(), kl.data(), v.data(), layer, attn, rope);
      ops->paged_attention(*kv, ql.data(), layer, attn, out.data());
    }
    double worst = 0.0;
    for (size_t si = 0; si < step.size(); ++si) {
      const int s = step[si].first;
      for (int r = l.query_start[si]; r < l.query_start[si + 1]; ++r) {
        for (int h = 0; h < heads; ++h) {
          const int kvh = h / (heads / kv_heads);
          std::vector<std::vector<double>> ks, vs;
          for (int p = 0; p < len[s]; ++p) {
            ks.emplace_back(K[s][p].begin() + kvh * hd, K[s][p].begin() + (kvh + 1) * hd);
            vs.emplace_back(V[s][p].begin() + kvh * hd, V[s][p].begin() + (kvh + 1) * hd);
          }
          std::vector<double> qh(rq[r].begin() + h * hd, rq[r].begin() + (h + 1) * hd);
          std::vector<double> ref;
          ref_attend(qh, ks, vs, 0, l.positions[r], scale, ref);
          for (int i = 0; i < hd; ++i)
            worst = std::max(worst, std::abs(out[(r * heads + h) * hd + i] - ref[i]));
        }
      }
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("cpu begin_step rejects malformed layouts", "[cpu_ops]") {
  auto ops = make_cpu_ops(1);
  auto kv = ops->make_kv_cache({1, 4, 16, 1, 32, KvDtype::kF32});
  StepLayout good;
  good.tokens = {1, 2};
  good.positions = {0, 1};
  good.slot_mapping = {16, 17};
  good.query_start = {0, 2};
  good.context_len = {2};
  good.block_table_start = {0, 1};
  good.block_tables = {1};
  CHECK_NOTHROW(ops->begin_step(good, *kv));
  auto bad = good;
  bad.block_tables = {4};  // outside the pool
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
  bad = good;
  bad.positions = {0, 2};  // beyond context_len
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
  bad = good;
  bad.context_len = {17};  // one block cannot hold 17 tokens
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
  bad = good;
  bad.slot_mapping = {16, 64};
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
  bad = good;
  bad.query_start = {0, 3};
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
  bad = good;
  bad.logit_rows = {2};
  CHECK_THROWS_AS(ops->begin_step(bad, *kv), Error);
}
