#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"

namespace tessera::cuda {
namespace {

// One CTA per row. The sum of squares is taken over the bf16-rounded residual, the values
// the next layer will read back, so norm and residual stay consistent.
__global__ void add_rms_norm_kernel(__nv_bfloat16* residual, const __nv_bfloat16* x,
                                    const float* gamma, int dim, float eps, __nv_bfloat16* out) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  uint4* res = reinterpret_cast<uint4*>(residual + row * dim);
  const uint4* add = x ? reinterpret_cast<const uint4*>(x + row * dim) : nullptr;
  float sumsq = 0.f;
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    float r[8];
    unpack8<__nv_bfloat16>(res[i], r);
    if (add) {
      float a[8];
      unpack8<__nv_bfloat16>(add[i], a);
#pragma unroll
      for (int j = 0; j < 8; ++j) r[j] += a[j];
      const uint4 packed = pack8<__nv_bfloat16>(r);
      res[i] = packed;
      unpack8<__nv_bfloat16>(packed, r);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) sumsq += r[j] * r[j];
  }
  const float inv = rsqrtf(block_sum(sumsq, scratch) / dim + eps);
  uint4* dst = reinterpret_cast<uint4*>(out + row * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    float r[8];
    unpack8<__nv_bfloat16>(res[i], r);
    const float4 g0 = reinterpret_cast<const float4*>(gamma)[2 * i];
    const float4 g1 = reinterpret_cast<const float4*>(gamma)[2 * i + 1];
    const float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) r[j] = r[j] * inv * g[j];
    dst[i] = pack8<__nv_bfloat16>(r);
  }
}

}  // namespace

cudaError_t launch_add_rms_norm(__nv_bfloat16* residual, const __nv_bfloat16* x, const float* gamma,
                                int rows, int dim, float eps, __nv_bfloat16* out,
                                cudaStream_t stream) {
  if (dim % 8 != 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int threads = dim / 8 >= 512 ? 512 : ((dim / 8 + 31) / 32) * 32;
  add_rms_norm_kernel<<<rows, threads, 0, stream>>>(residual, x, gamma, dim, eps, out);
  return cudaGetLastError();
}

}  // namespace tessera::cuda
