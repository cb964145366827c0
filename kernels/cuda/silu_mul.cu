#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

__global__ void silu_mul_kernel(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t count,
                                __nv_bfloat16* out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t vec = count / 8;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < vec; i += stride) {
    float g[8], u[8];
    unpack8<__nv_bfloat16>(reinterpret_cast<const uint4*>(gate)[i], g);
    unpack8<__nv_bfloat16>(reinterpret_cast<const uint4*>(up)[i], u);
#pragma unroll
    for (int j = 0; j < 8; ++j) g[j] = silu(g[j]) * u[j];
    reinterpret_cast<uint4*>(out)[i] = pack8<__nv_bfloat16>(g);
  }
  // Tail when count is not a multiple of 8.
  for (int64_t i = vec * 8 + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += stride) {
    const float x = __bfloat162float(gate[i]);
    out[i] = __float2bfloat16(silu(x) * __bfloat162float(up[i]));
  }
}

}  // namespace

cudaError_t launch_silu_mul(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t count,
                            __nv_bfloat16* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const int64_t vec = (count + 7) / 8;
  const int blocks = static_cast<int>(vec / 256 + 1 < 132 * 16 ? vec / 256 + 1 : 132 * 16);
  return launch_kernel(silu_mul_kernel, dim3(blocks), dim3(256), 0, stream, gate, up, count, out);
}

}  // namespace tessera::cuda
