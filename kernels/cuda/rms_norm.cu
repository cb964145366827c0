#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

__device__ __forceinline__ void load8(const float4* p, int i, float r[8]) {
  const float4 a = p[2 * i], b = p[2 * i + 1];
  r[0] = a.x, r[1] = a.y, r[2] = a.z, r[3] = a.w;
  r[4] = b.x, r[5] = b.y, r[6] = b.z, r[7] = b.w;
}

// One CTA per row, 8 elements per thread per step. The residual stays f32 end to end (the
// bf16 x is added in f32 and nothing is rounded), so the sum of squares is taken over exactly
// the values stored back and read by the next layer. Only `out` is rounded to bf16.
__global__ void add_rms_norm_kernel(float* residual, const __nv_bfloat16* x, const float* gamma,
                                    int dim, float eps, __nv_bfloat16* out) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float4* res = reinterpret_cast<float4*>(residual + row * dim);
  const uint4* add = x ? reinterpret_cast<const uint4*>(x + row * dim) : nullptr;
  float sumsq = 0.f;
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    float r[8];
    load8(res, i, r);
    if (add) {
      float a[8];
      unpack8<__nv_bfloat16>(add[i], a);
#pragma unroll
      for (int j = 0; j < 8; ++j) r[j] += a[j];
      res[2 * i] = make_float4(r[0], r[1], r[2], r[3]);
      res[2 * i + 1] = make_float4(r[4], r[5], r[6], r[7]);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) sumsq += r[j] * r[j];
  }
  const float inv = rsqrtf(block_sum(sumsq, scratch) / dim + eps);
  // Each thread re-reads only the elements it wrote itself above: no barrier needed.
  uint4* dst = reinterpret_cast<uint4*>(out + row * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
    float r[8], g[8];
    load8(res, i, r);
    load8(reinterpret_cast<const float4*>(gamma), i, g);
#pragma unroll
    for (int j = 0; j < 8; ++j) r[j] = r[j] * inv * g[j];
    dst[i] = pack8<__nv_bfloat16>(r);
  }
}

}  // namespace

cudaError_t launch_add_rms_norm(float* residual, const __nv_bfloat16* x, const float* gamma,
                                int rows, int dim, float eps, __nv_bfloat16* out,
                                cudaStream_t stream) {
  if (dim % 8 != 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int threads = dim / 8 >= 512 ? 512 : ((dim / 8 + 31) / 32) * 32;
  return launch_kernel(add_rms_norm_kernel, dim3(rows), dim3(threads), 0, stream, residual, x,
                       gamma, dim, eps, out);
}

}  // namespace tessera::cuda
