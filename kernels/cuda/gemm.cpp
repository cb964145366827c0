#include "kernels/cuda/gemm.h"

#include <string>

#include "kernels/cuda/cuda_check.h"

namespace tessera::cuda {

LtGemm::LtGemm() {
  check_cublas(cublasLtCreate(&handle_), "cublasLtCreate");
  check_cuda(cudaMalloc(&workspace_, workspace_bytes_), "cudaMalloc(gemm workspace)");
}

LtGemm::~LtGemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

// Column-major view: out^T[n, m] = op_T(W as col-major [k, n]) * x^T (col-major [k, m]).
const LtGemm::Plan& LtGemm::plan_for(int m, int n, int k, bool out_f32, bool fp8) {
  const auto key = std::make_tuple(m, n, k, out_f32, fp8);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  check_cublas(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
               "cublasLtMatmulDescCreate");
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                              sizeof(trans_a)),
               "set TRANSA");
  check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                              sizeof(trans_b)),
               "set TRANSB");
  const cudaDataType_t in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  check_cublas(cublasLtMatrixLayoutCreate(&p.a, in, k, n, k), "layout A");
  check_cublas(cublasLtMatrixLayoutCreate(&p.b, in, k, m, k), "layout B");
  check_cublas(cublasLtMatrixLayoutCreate(&p.c, out_f32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n),
               "layout C");
  cublasLtMatmulPreference_t pref = nullptr;
  check_cublas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes_, sizeof(workspace_bytes_)),
               "preference workspace");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    throw Error(ErrorKind::kInternal, "cuBLASLt found no algorithm for a " + std::to_string(m) +
                                          "x" + std::to_string(n) + "x" + std::to_string(k) +
                                          (fp8 ? " fp8" : " bf16") + " GEMM");
  }
  p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

void LtGemm::run(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                 cudaStream_t stream) {
  if (m == 0) return;
  const Plan& p = plan_for(m, n, k, out_f32, false);
  const float alpha = 1.0f, beta = 0.0f;
  check_cublas(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                              &p.algo, workspace_, workspace_bytes_, stream),
               "cublasLtMatmul");
}

void LtGemm::run_fp8(const void* x, int m, const void* w, int n, int k, void* out,
                     cudaStream_t stream) {
  if (m == 0) return;
  const Plan& p = plan_for(m, n, k, false, true);
  const float alpha = 1.0f, beta = 0.0f;
  check_cublas(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                              &p.algo, workspace_, workspace_bytes_, stream),
               "cublasLtMatmul(fp8)");
}

}  // namespace tessera::cuda
