// The fused-projection ops' default implementations (Ops::matmul_multi, Ops::gate_up_silu)
// on the CPU backend: they must give exactly what the separate ops give, since model/ now
// issues them instead of matmul x3 and matmul x2 + silu_mul.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/ops.h"
#include "test_cpu_ops_util.h"

using namespace tessera;

namespace {

// The CPU backend borrows a weight's bytes, so `store` keeps them alive for the test.
Weight random_upload(Ops& ops, std::mt19937& rng, DType t, int64_t rows, int64_t cols,
                     std::vector<std::vector<uint8_t>>& store) {
  store.push_back(test::random_weight(rng, t, rows, cols));
  return ops.upload({t, rows, cols, store.back().data()});
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("matmul_multi default equals one matmul per weight", "[ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(4242);
  for (const DType t : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_1}) {
    for (const int rows : {1, 3, 8, 9, 33}) {
      INFO("dtype " << dtype_name(t) << " rows " << rows);
      const int cols = 96;
      const std::vector<int> ns = {64, 32, 32, 5};
      std::vector<std::vector<uint8_t>> store;
      std::vector<Weight> ws;
      for (int n : ns) ws.push_back(random_upload(*ops, rng, t, n, cols, store));
      const auto x = test::random_floats(rng, size_t(rows) * cols);
      std::vector<std::vector<float>> fused, separate;
      std::vector<const Weight*> wptr;
      std::vector<void*> optr;
      for (size_t i = 0; i < ns.size(); ++i) {
        fused.emplace_back(size_t(rows) * ns[i], -999.0f);
        separate.emplace_back(size_t(rows) * ns[i], -999.0f);
        wptr.push_back(&ws[i]);
      }
      for (auto& f : fused) optr.push_back(f.data());
      ops->matmul_multi(x.data(), rows, wptr, optr);
      for (size_t i = 0; i < ns.size(); ++i) {
        ops->matmul(x.data(), rows, ws[i], separate[i].data());
        CHECK(same_bits(fused[i], separate[i]));
      }
    }
  }
}

TEST_CASE("gate_up_silu default equals matmul, matmul, silu_mul", "[ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(777);
  for (const DType t : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_1}) {
    for (const int rows : {1, 5, 8, 16}) {
      INFO("dtype " << dtype_name(t) << " rows " << rows);
      const int cols = 64, ffn = 160;
      std::vector<std::vector<uint8_t>> store;
      const Weight gate = random_upload(*ops, rng, t, ffn, cols, store);
      const Weight up = random_upload(*ops, rng, t, ffn, cols, store);
      const auto x = test::random_floats(rng, size_t(rows) * cols, -2.0f, 2.0f);
      const size_t elems = size_t(rows) * ffn;
      std::vector<float> out(elems, -999.0f), scratch(elems, -999.0f);
      ops->gate_up_silu(x.data(), rows, gate, up, scratch.data(), out.data());
      std::vector<float> g(elems), u(elems), ref(elems);
      ops->matmul(x.data(), rows, gate, g.data());
      ops->matmul(x.data(), rows, up, u.data());
      ops->silu_mul(g.data(), u.data(), static_cast<int64_t>(elems), ref.data());
      CHECK(same_bits(out, ref));
    }
  }
}

TEST_CASE("fused-projection defaults reject mismatched arguments", "[ops]") {
  auto ops = make_cpu_ops(1);
  std::mt19937 rng(9);
  std::vector<std::vector<uint8_t>> store;
  const Weight a = random_upload(*ops, rng, DType::kF32, 8, 32, store);
  const Weight b = random_upload(*ops, rng, DType::kF32, 16, 32, store);
  std::vector<float> x(32, 0.5f), out(16), scratch(16);
  const Weight* ws[] = {&a, &b};
  void* const outs[] = {out.data()};
  try {
    ops->matmul_multi(x.data(), 1, ws, outs);
    FAIL("matmul_multi accepted 2 weights for 1 output");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kInvalidArgument);
  }
  try {
    ops->gate_up_silu(x.data(), 1, a, b, scratch.data(), out.data());
    FAIL("gate_up_silu accepted gate and up of different shapes");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kInvalidArgument);
  }
}
