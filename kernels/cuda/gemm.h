#pragma once
// cuBLASLt GEMMs for row-major activations times row-major [out, in] weights:
//   out[M, N] = x[M, K] * W[N, K]^T, bf16 inputs, fp32 accumulation, bf16 or f32 output;
//   or FP8 e4m3 inputs (the "TN" layout FP8 requires is this one), bf16 output.
// Algorithms are chosen once per shape (cuBLASLt heuristic) and cached, so a call inside
// CUDA graph capture makes no allocation. Not thread-safe: one per backend instance.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>

namespace tessera::cuda {

class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // x: [m, k] bf16, w: [n, k] bf16 -> out: [m, n] bf16 (out_f32 false) or f32.
  void run(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
           cudaStream_t stream);
  // FP8 e4m3 tensor cores: x: [m, k] e4m3, w: [n, k] e4m3 -> out: [m, n] bf16, unscaled
  // (the caller applies per-token and per-channel scales). k % 16 == 0.
  void run_fp8(const void* x, int m, const void* w, int n, int k, void* out, cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  const Plan& plan_for(int m, int n, int k, bool out_f32, bool fp8);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  std::map<std::tuple<int, int, int, bool, bool>, Plan> plans_;
};

}  // namespace tessera::cuda
