// RMSNorm, SiLU*up and RoPE (both layouts, Llama-3 scaling) of the CPU backend against fp64.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/ops.h"
#include "test_cpu_ops_util.h"

using namespace tessera;

namespace {

StepLayout simple_layout(std::vector<int32_t> positions) {
  StepLayout l;
  const int t = static_cast<int>(positions.size());
  const int ctx = *std::max_element(positions.begin(), positions.end()) + 1;
  l.tokens.assign(t, 0);
  l.positions = positions;
  l.slot_mapping.assign(t, -1);  // nothing stored
  l.query_start = {0, t};
  l.context_len = {ctx};
  const int blocks = (ctx + 15) / 16;
  l.block_table_start = {0, blocks};
  for (int b = 0; b < blocks; ++b) l.block_tables.push_back(1);
  return l;
}

// fp64 rotation of x [num_heads, head_dim] at `pos`, by the Llama / NeoX definitions.
void ref_rope(std::vector<double>& x, int num_heads, int head_dim, int pos, bool neox,
              const std::vector<double>& inv) {
  const int half = static_cast<int>(inv.size());
  for (int h = 0; h < num_heads; ++h) {
    double* v = x.data() + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      const double c = std::cos(pos * inv[i]), s = std::sin(pos * inv[i]);
      const double va = v[a], vb = v[b];
      v[a] = va * c - vb * s;
      v[b] = va * s + vb * c;
    }
  }
}

}  // namespace

TEST_CASE("cpu add_rms_norm matches fp64", "[cpu_ops]") {
  auto ops = make_cpu_ops(2);
  auto kv = ops->make_kv_cache({1, 4, 16, 1, 32, KvDtype::kF32});
  std::mt19937 rng(5);
  for (const int dim : {8, 576, 1000}) {
    for (const bool with_x : {false, true}) {
      const int rows = 7;
      ops->begin_step(simple_layout({0, 1, 2, 3, 4, 5, 6}), *kv);
      auto h = test::random_floats(rng, rows * dim, -3.0f, 3.0f);
      const auto x = test::random_floats(rng, rows * dim);
      const auto gamma = test::random_floats(rng, dim, 0.5f, 1.5f);
      // gamma uploaded as f16 to exercise the conversion of vectors at upload
      std::vector<uint16_t> gamma16(dim);
      for (int i = 0; i < dim; ++i) gamma16[i] = test::to_f16(gamma[i]);
      const Weight g = ops->upload({DType::kF16, 1, dim, gamma16.data()});
      const auto h0 = h;
      std::vector<float> out(rows * dim);
      ops->add_rms_norm(h.data(), with_x ? x.data() : nullptr, g, 1e-5f, out.data());
      double worst = 0.0;
      for (int r = 0; r < rows; ++r) {
        double ss = 0.0;
        std::vector<double> res(dim);
        for (int i = 0; i < dim; ++i) {
          res[i] = static_cast<double>(h0[r * dim + i]) + (with_x ? x[r * dim + i] : 0.0);
          ss += res[i] * res[i];
          CHECK(h[r * dim + i] == Approx(res[i]).margin(1e-6));
        }
        const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
        for (int i = 0; i < dim; ++i) {
          const double ref = res[i] * inv * test::from_f16(gamma16[i]);
          worst = std::max(worst, std::abs(out[r * dim + i] - ref));
        }
      }
      INFO("dim " << dim);
      CHECK(worst < 1e-5);
    }
  }
}

TEST_CASE("cpu silu_mul matches fp64", "[cpu_ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(6);
  const int n = 10007;
  const auto g = test::random_floats(rng, n, -10.0f, 10.0f);
  const auto u = test::random_floats(rng, n, -2.0f, 2.0f);
  std::vector<float> out(n);
  ops->silu_mul(g.data(), u.data(), n, out.data());
  for (int i = 0; i < n; ++i) {
    const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
    REQUIRE(out[i] == Approx(ref).margin(1e-6).epsilon(1e-5));
  }
}

TEST_CASE("llama3 rope frequencies match transformers' values", "[cpu_ops]") {
  RopeConfig rope;
  rope.theta = 500000.0f;
  rope.scaling_factor = 8.0f;
  rope.low_freq_factor = 1.0f;
  rope.high_freq_factor = 4.0f;
  rope.original_max_position = 8192;
  const auto inv = cpu::rope_inv_freq(rope, 128);
  REQUIRE(inv.size() == 64);
  // Printed by transformers' llama3 rope init (float32) for this config.
  const std::pair<int, double> expected[] = {{0, 1.0},
                                             {10, 0.12868738174438477},
                                             {20, 0.016560440883040428},
                                             {25, 0.005940730683505535},
                                             {30, 0.0013718936825171113},
                                             {35, 9.556212171446532e-05},
                                             {40, 3.428102354519069e-05},
                                             {50, 4.411534519022098e-06},
                                             {63, 3.068925877869333e-07}};
  for (const auto& [i, v] : expected) {
    INFO("pair " << i);
    CHECK(inv[i] == Approx(v).epsilon(1e-6));
  }
  rope.scaling_factor = 0.0f;
  CHECK(cpu::rope_inv_freq(rope, 128)[40] == Approx(std::pow(500000.0, -80.0 / 128)));
}

TEST_CASE("cpu rope rotates q and k in both layouts at the step's positions", "[cpu_ops]") {
  const int heads = 4, kv_heads = 2, hd = 64;
  std::mt19937 rng(8);
  for (const bool neox : {false, true}) {
    for (const float scaling : {0.0f, 8.0f}) {
      auto ops = make_cpu_ops(2);
      auto kv = ops->make_kv_cache({1, 4, 16, kv_heads, hd, KvDtype::kF32});
      RopeConfig rope;
      rope.theta = 10000.0f;
      rope.neox = neox;
      rope.scaling_factor = scaling;
      rope.original_max_position = 64;  // so that positions up to 3000 cross every band
      const std::vector<int32_t> pos = {0, 1, 7, 100, 3000};
      const int t = static_cast<int>(pos.size());
      ops->begin_step(simple_layout(pos), *kv);
      auto q = test::random_floats(rng, t * heads * hd);
      auto k = test::random_floats(rng, t * kv_heads * hd);
      const auto v = test::random_floats(rng, t * kv_heads * hd);
      const auto q0 = q, k0 = k;
      AttentionParams attn{heads, kv_heads, hd, 0.125f, 0};
      ops->rope_store_kv(*kv, q.data(), k.data(), v.data(), 0, attn, rope);
      const auto inv = cpu::rope_inv_freq(rope, hd);
      double worst = 0.0;
      for (int r = 0; r < t; ++r) {
        std::vector<double> rq(q0.begin() + r * heads * hd, q0.begin() + (r + 1) * heads * hd);
        std::vector<double> rk(k0.begin() + r * kv_heads * hd,
                               k0.begin() + (r + 1) * kv_heads * hd);
        ref_rope(rq, heads, hd, pos[r], neox, inv);
        ref_rope(rk, kv_heads, hd, pos[r], neox, inv);
        for (int i = 0; i < heads * hd; ++i)
          worst = std::max(worst, std::abs(q[r * heads * hd + i] - rq[i]));
        for (int i = 0; i < kv_heads * hd; ++i)
          worst = std::max(worst, std::abs(k[r * kv_heads * hd + i] - rk[i]));
      }
      INFO("neox " << neox << " scaling " << scaling);
      CHECK(worst < 2e-6);
      // Position 0 is the identity; rotation preserves each pair's norm.
      for (int i = 0; i < heads * hd; ++i) CHECK(q[i] == q0[i]);
    }
  }
}

TEST_CASE("adjacent-pair rope on permuted rows equals neox rope", "[cpu_ops]") {
  // GGUF stores Q/K rows permuted so that adjacent-pair rope gives the HF (NeoX) result.
  const int hd = 32, t = 3;
  std::mt19937 rng(9);
  RopeConfig rope;
  const std::vector<int32_t> pos = {5, 77, 1234};
  auto x = test::random_floats(rng, t * hd);
  std::vector<float> perm(x.size());
  for (int r = 0; r < t; ++r)
    for (int i = 0; i < hd / 2; ++i) {
      perm[r * hd + 2 * i] = x[r * hd + i];
      perm[r * hd + 2 * i + 1] = x[r * hd + i + hd / 2];
    }
  cpu::RopeTable table;
  cpu::build_rope_table(rope, hd, pos, table);
  cpu::apply_rope(table, true, x.data(), t, 1, hd);
  cpu::apply_rope(table, false, perm.data(), t, 1, hd);
  for (int r = 0; r < t; ++r)
    for (int i = 0; i < hd / 2; ++i) {
      CHECK(perm[r * hd + 2 * i] == x[r * hd + i]);
      CHECK(perm[r * hd + 2 * i + 1] == x[r * hd + i + hd / 2]);
    }
}
