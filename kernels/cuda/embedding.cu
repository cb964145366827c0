#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"

namespace tessera::cuda {
namespace {

__global__ void embedding_kernel(const __nv_bfloat16* table, int64_t vocab, int dim,
                                 const int32_t* tokens, __nv_bfloat16* out) {
  const int t = blockIdx.x;
  const int64_t id = tokens[t];
  const bool ok = id >= 0 && id < vocab;
  const uint4* src = reinterpret_cast<const uint4*>(table + (ok ? id : 0) * dim);
  uint4* dst = reinterpret_cast<uint4*>(out + int64_t(t) * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    dst[i] = ok ? src[i] : make_uint4(0, 0, 0, 0);
  }
}

}  // namespace

cudaError_t launch_embedding(const __nv_bfloat16* table, int64_t vocab, int dim,
                             const int32_t* tokens, int num_tokens, __nv_bfloat16* out,
                             cudaStream_t stream) {
  if (dim % 8 != 0) return cudaErrorInvalidValue;
  if (num_tokens == 0) return cudaSuccess;
  embedding_kernel<<<num_tokens, 128, 0, stream>>>(table, vocab, dim, tokens, out);
  return cudaGetLastError();
}

}  // namespace tessera::cuda
