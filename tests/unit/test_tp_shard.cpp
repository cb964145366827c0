// Tensor-parallel sharding arithmetic: heads, KV heads, MLP rows and vocabulary per rank, and
// weight slices checked against the whole tensor decoded by a dequantizer written here from
// kernels/weight_scheme.h's layout description (not Tessera's).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "common/error.h"
#include "model/tp_shard.h"

using namespace tessera;

namespace {

ModelConfig shape(int heads, int kv, int ffn, int vocab) {
  ModelConfig c;
  c.hidden_size = 4096;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.head_dim = 128;
  c.intermediate_size = ffn;
  c.vocab_size = vocab;
  c.num_layers = 1;
  return c;
}

// Reference decoder: int4 two per byte (low nibble = even column), w = (q - zero) * scale,
// group g(col) = g_idx ? g_idx[col] : col / group_size; dense f32 as is.
std::vector<double> decode(const HostTensor& t) {
  std::vector<double> w(t.rows * t.cols);
  const int64_t groups =
      t.g_idx != nullptr ? [&] {
        int32_t m = 0;
        for (int64_t c = 0; c < t.cols; ++c) m = std::max(m, t.g_idx[c]);
        return int64_t{m} + 1;
      }()
                         : (t.cols + t.scheme.group_size - 1) / std::max(1, t.scheme.group_size);
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) {
      if (t.scheme.kind == QuantKind::kDense) {
        w[r * t.cols + c] = static_cast<const float*>(t.data)[r * t.cols + c];
        continue;
      }
      const uint8_t byte = static_cast<const uint8_t*>(t.data)[r * (t.cols / 2) + c / 2];
      const int q = c % 2 == 0 ? (byte & 15) : (byte >> 4);
      const int64_t g = t.g_idx != nullptr ? t.g_idx[c] : c / t.scheme.group_size;
      const int zero = t.zeros != nullptr ? t.zeros[r * groups + g] : 8;
      w[r * t.cols + c] = (q - zero) * static_cast<double>(t.scales[r * groups + g]);
    }
  return w;
}

}  // namespace

TEST_CASE("tp shard: Llama-3.1-8B shape over 1, 2, 4, 8 ranks", "[tp]") {
  const ModelConfig c = shape(32, 8, 14336, 128256);
  for (int world : {1, 2, 4, 8}) {
    int64_t ffn = 0, vocab = 0;
    std::set<int> heads, kv;
    for (int r = 0; r < world; ++r) {
      const TpShard s = make_tp_shard(c, r, world, 128);
      CHECK(s.num_heads == 32 / world);
      CHECK(s.num_kv_heads == 8 / world);
      for (int h = s.head_begin; h < s.head_begin + s.num_heads; ++h) {
        heads.insert(h);
        // Every query head's KV head (GQA group) lives on the same rank.
        const int k = h / (32 / 8);
        CHECK(k >= s.kv_head_begin);
        CHECK(k < s.kv_head_begin + s.num_kv_heads);
      }
      for (int k = s.kv_head_begin; k < s.kv_head_begin + s.num_kv_heads; ++k) kv.insert(k);
      CHECK(s.ffn_begin == ffn);
      ffn = s.ffn_end;
      CHECK(s.ffn_begin % 128 == 0);
      CHECK(s.vocab_begin == vocab);
      vocab = s.vocab_end;
      const ModelConfig sc = shard_config(c, s);
      CHECK(sc.num_heads * world == 32);
      CHECK(sc.intermediate_size * world == 14336);
    }
    CHECK(heads.size() == 32);
    CHECK(kv.size() == 8);
    CHECK(ffn == 14336);
    CHECK(vocab == 128256);
  }
}

TEST_CASE("tp shard: fewer KV heads than ranks replicates them", "[tp]") {
  const ModelConfig c = shape(32, 2, 1024, 1000);
  std::vector<int> kv_of_rank;
  for (int r = 0; r < 8; ++r) {
    const TpShard s = make_tp_shard(c, r, 8);
    CHECK(s.num_kv_heads == 1);
    for (int h = s.head_begin; h < s.head_begin + s.num_heads; ++h)
      CHECK(h / 16 == s.kv_head_begin);
    kv_of_rank.push_back(s.kv_head_begin);
  }
  CHECK(kv_of_rank == std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1});
  // Uneven vocabulary: the last rank gets the remainder.
  CHECK(make_tp_shard(c, 7, 8).vocab_end == 1000);
  CHECK(make_tp_shard(c, 7, 8).vocab_begin == 875);
}

TEST_CASE("tp shard: shapes that do not divide are refused in one line", "[tp]") {
  const ModelConfig smol = shape(9, 3, 1536, 49152);  // SmolLM2-135M
  CHECK_THROWS_WITH(make_tp_shard(smol, 0, 2), Catch::Contains("9 attention heads"));
  CHECK_NOTHROW(make_tp_shard(smol, 2, 3));
  CHECK_THROWS_WITH(make_tp_shard(shape(32, 6, 1024, 10), 0, 4), Catch::Contains("KV heads"));
  CHECK_THROWS_WITH(make_tp_shard(shape(32, 8, 1000, 10), 0, 2, 128),
                    Catch::Contains("intermediate size"));
  CHECK_THROWS_AS(make_tp_shard(smol, 3, 3), Error);
}

TEST_CASE("tp shard: row and column slices equal the whole tensor's parts", "[tp]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t rows = 6, cols = 512, group = 128;
  // Dense f32.
  std::vector<float> dense(rows * cols);
  for (auto& x : dense) x = u(rng);
  HostTensor d{DType::kF32, rows, cols, dense.data()};
  // INT4, asymmetric, group 128, with and without act order.
  std::vector<uint8_t> q(rows * cols / 2);
  for (auto& b : q) b = static_cast<uint8_t>(rng());
  const int64_t groups = cols / group;
  std::vector<float> scales(rows * groups);
  for (auto& s : scales) s = 0.01f + 0.05f * std::abs(u(rng));
  std::vector<uint8_t> zeros(rows * groups);
  for (auto& z : zeros) z = static_cast<uint8_t>(rng() % 16);
  std::vector<int32_t> gidx(cols);
  for (int64_t c = 0; c < cols; ++c) gidx[c] = static_cast<int32_t>((c * 7 + 3) % groups);
  HostTensor g4{DType::kF32, rows, cols, q.data()};
  g4.scheme.kind = QuantKind::kInt4;
  g4.scheme.group_size = group;
  g4.scheme.has_zeros = true;
  g4.scales = scales.data();
  g4.zeros = zeros.data();
  HostTensor ao = g4;
  ao.scheme.act_order = true;
  ao.g_idx = gidx.data();

  for (const HostTensor* t : {&d, &g4, &ao}) {
    const std::vector<double> whole = decode(*t);
    for (int world : {1, 2, 4}) {
      // Row-parallel identity: the ranks' partial products sum to the whole product.
      std::vector<double> x(cols), sum(rows, 0.0), ref(rows, 0.0);
      for (auto& v : x) v = u(rng);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) ref[r] += x[c] * whole[r * cols + c];
      for (int rank = 0; rank < world; ++rank) {
        const int64_t b = cols / world * rank, e = cols / world * (rank + 1);
        const TensorSlice s = slice_cols(*t, b, e);
        REQUIRE(s.view.cols == e - b);
        const std::vector<double> part = decode(s.view);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < e - b; ++c) {
            REQUIRE(part[r * (e - b) + c] == whole[r * cols + b + c]);
            sum[r] += x[b + c] * part[r * (e - b) + c];
          }
      }
      for (int64_t r = 0; r < rows; ++r) CHECK(sum[r] == Approx(ref[r]).epsilon(1e-9));
    }
    const TensorSlice rs = slice_rows(*t, 2, 5);
    const std::vector<double> part = decode(rs.view);
    for (int64_t i = 0; i < 3 * cols; ++i) REQUIRE(part[i] == whole[2 * cols + i]);
  }
  CHECK_THROWS_WITH(slice_cols(g4, 64, 256), Catch::Contains("group"));
}
