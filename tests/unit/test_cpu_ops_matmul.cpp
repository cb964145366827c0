// Matmul / lm_head / embedding of the CPU backend against an fp64 reference, for every
// weight storage type, on both the few-rows (decode) and many-rows (prefill) paths.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/ops.h"
#include "test_cpu_ops_util.h"

using namespace tessera;

namespace {

const DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16,
                           DType::kQ8_0, DType::kQ4_0, DType::kQ4_1};

// Max over outputs of |got - ref| / sum_k |x w| (the scale of rounding error of a dot).
double matmul_error(Ops& ops, std::mt19937& rng, DType t, int rows, int n, int cols,
                    bool use_lm_head) {
  const auto bytes = test::random_weight(rng, t, n, cols);
  const auto ref_w = test::decode_weight(t, bytes, n, cols);
  const auto x = test::random_floats(rng, static_cast<size_t>(rows) * cols);
  const Weight w = ops.upload({t, n, cols, bytes.data()});
  std::vector<float> out(static_cast<size_t>(rows) * n, -999.0f);
  if (use_lm_head) {
    ops.lm_head(x.data(), rows, w, out.data());
  } else {
    ops.matmul(x.data(), rows, w, out.data());
  }
  double worst = 0.0;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int k = 0; k < cols; ++k) {
        ref += static_cast<double>(x[r * cols + k]) * ref_w[j * cols + k];
        mag += std::abs(static_cast<double>(x[r * cols + k]) * ref_w[j * cols + k]);
      }
      worst = std::max(worst, std::abs(out[r * n + j] - ref) / (mag + 1e-30));
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("cpu matmul matches fp64 dequantize-then-matmul for every dtype", "[cpu_ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(1234);
  for (const DType t : kAllTypes) {
    for (const int rows : {1, 2, 3, 4, 5, 7, 16, 33}) {
      for (const int n : {1, 5, 37, 64}) {
        for (const int cols : {32, 96, 576}) {
          INFO("dtype " << dtype_name(t) << " rows " << rows << " n " << n << " cols " << cols);
          CHECK(matmul_error(*ops, rng, t, rows, n, cols, rows == 5) < 1e-5);
        }
      }
    }
  }
}

TEST_CASE("cpu matmul handles float rows that are not whole groups", "[cpu_ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(7);
  for (const DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const int rows : {1, 6}) {
      for (const int cols : {1, 17, 45, 100}) {
        INFO("dtype " << dtype_name(t) << " rows " << rows << " cols " << cols);
        CHECK(matmul_error(*ops, rng, t, rows, 9, cols, false) < 1e-5);
      }
    }
  }
}

TEST_CASE("cpu upload rejects quantized rows that are not whole blocks", "[cpu_ops]") {
  auto ops = make_cpu_ops(1);
  std::vector<uint8_t> bytes(200);
  CHECK_THROWS_AS(ops->upload({DType::kQ4_1, 2, 40, bytes.data()}), Error);
  CHECK_THROWS_AS(ops->upload({DType::kF32, 0, 4, bytes.data()}), Error);
}

TEST_CASE("cpu embedding decodes the rows of a quantized table", "[cpu_ops]") {
  auto ops = make_cpu_ops(2);
  auto kv = ops->make_kv_cache({1, 4, 16, 1, 32, KvDtype::kF32});
  std::mt19937 rng(99);
  const int vocab = 50, dim = 64;
  for (const DType t : kAllTypes) {
    const auto bytes = test::random_weight(rng, t, vocab, dim);
    const auto ref = test::decode_weight(t, bytes, vocab, dim);
    const Weight w = ops->upload({t, vocab, dim, bytes.data()});
    StepLayout l;
    l.tokens = {3, 49, 0, 3};
    l.positions = {0, 1, 2, 3};
    l.slot_mapping = {16, 17, 18, 19};
    l.query_start = {0, 4};
    l.context_len = {4};
    l.block_table_start = {0, 1};
    l.block_tables = {1};
    ops->begin_step(l, *kv);
    std::vector<float> out(4 * dim);
    ops->embedding(w, out.data());
    double worst = 0.0;
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < dim; ++k)
        worst = std::max(worst, std::abs(out[r * dim + k] - ref[l.tokens[r] * dim + k]));
    INFO("dtype " << dtype_name(t));
    CHECK(worst < 1e-7);
    l.tokens[1] = vocab;  // out of range
    ops->begin_step(l, *kv);
    CHECK_THROWS_AS(ops->embedding(w, out.data()), Error);
  }
}
