// CudaOps in deterministic mode: every projection (plain, fused, LM head) takes the one
// batch-invariant GEMM of gemm_invariant.h at every batch size. A quantized weight is first
// dequantized to bf16 (exact, element by element), so its rows too reduce in one order;
// GGUF weights already are bf16 on the device.
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemm_invariant.h"
#include "kernels/cuda/quant.h"

namespace tessera::cuda {

void CudaOps::matmul_invariant(const void* x, int rows, const Weight& w, void* out, bool out_f32) {
  if (rows <= 0) return;
  if (w.cols % 8 != 0) {
    throw Error(ErrorKind::kUnsupported, "deterministic matmul: row length " +
                                             std::to_string(w.cols) + " is not a multiple of 8");
  }
  const void* weight = w.data;
  if (is_scheme(w)) {
    const QuantWeightArgs a = quant_args(w);
    const size_t need = size_t(w.rows) * w.cols * 2;
    if (dequant_scratch_.bytes < need) {  // upload reserves it; a capture must not allocate
      if (capturing()) {
        throw Error(ErrorKind::kInternal, "deterministic matmul needs a new scratch in capture");
      }
      if (dequant_scratch_.reserve(need)) clear_graphs();
    }
    check_cuda(launch_dequant_weight(a, dequant_scratch_.ptr, stream_), "dequant_weight");
    weight = dequant_scratch_.ptr;
  } else if (w.dtype != DType::kBF16) {
    throw Error(ErrorKind::kInvalidArgument, "matmul: weight must be an uploaded bf16 matrix");
  }
  check_cuda(launch_gemm_invariant(x, rows, weight, static_cast<int>(w.rows),
                                   static_cast<int>(w.cols), out, out_f32, stream_),
             "gemm_invariant");
}

}  // namespace tessera::cuda
