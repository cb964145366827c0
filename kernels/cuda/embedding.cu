#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

// One CTA per token: each thread reads 8 bf16 (16 bytes) and writes them widened to f32
// (two 16-byte stores), since the row starts the f32 residual stream.
__global__ void embedding_kernel(const __nv_bfloat16* table, int64_t vocab, int dim,
                                 const int32_t* tokens, float* out) {
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x;
  const int64_t id = tokens[t];
  const bool ok = id >= 0 && id < vocab;
  const uint4* src = reinterpret_cast<const uint4*>(table + (ok ? id : 0) * dim);
  float4* dst = reinterpret_cast<float4*>(out + int64_t(t) * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    float v[8] = {};
    if (ok) unpack8<__nv_bfloat16>(src[i], v);
    dst[2 * i] = make_float4(v[0], v[1], v[2], v[3]);
    dst[2 * i + 1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

}  // namespace

cudaError_t launch_embedding(const __nv_bfloat16* table, int64_t vocab, int dim,
                             const int32_t* tokens, int num_tokens, float* out,
                             cudaStream_t stream) {
  if (dim % 8 != 0) return cudaErrorInvalidValue;
  if (num_tokens == 0) return cudaSuccess;
  return launch_kernel(embedding_kernel, dim3(num_tokens), dim3(128), 0, stream, table, vocab, dim,
                       tokens, out);
}

}  // namespace tessera::cuda
