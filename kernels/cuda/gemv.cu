#include <cuda_bf16.h>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/gemv.h"

namespace tessera::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kUnroll = 8;  // independent 16-byte weight loads in flight per lane

template <int M, typename TOut>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, int n,
                int k, TOut* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + size_t(row) * k);
  const uint4* xr = reinterpret_cast<const uint4*>(x);
  const int chunks = k / 8, x_stride = k / 8;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  int c = lane;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    uint4 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(wr + c + 32 * u);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float wf[8];
      unpack8<__nv_bfloat16>(wv[u], wf);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        unpack8<__nv_bfloat16>(__ldg(xr + m * x_stride + c + 32 * u), xf);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m] = fmaf(wf[j], xf[j], acc[m]);
      }
    }
  }
  for (; c < chunks; c += 32) {
    float wf[8];
    unpack8<__nv_bfloat16>(__ldcs(wr + c), wf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[8];
      unpack8<__nv_bfloat16>(__ldg(xr + m * x_stride + c), xf);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[m] = fmaf(wf[j], xf[j], acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = warp_sum(acc[m]);
    if (lane == 0) out[size_t(m) * n + row] = from_float<TOut>(v);
  }
}

template <typename TOut>
cudaError_t launch_typed(const void* x, int m, const void* w, int n, int k, void* out,
                         cudaStream_t stream) {
  const dim3 grid((n + kWarps - 1) / kWarps), block(kWarps * 32);
  auto xb = static_cast<const __nv_bfloat16*>(x);
  auto wb = static_cast<const __nv_bfloat16*>(w);
  auto o = static_cast<TOut*>(out);
  switch (m) {
    case 1:
      gemv_kernel<1, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 2:
      gemv_kernel<2, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 3:
      gemv_kernel<3, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 4:
      gemv_kernel<4, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 5:
      gemv_kernel<5, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 6:
      gemv_kernel<6, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 7:
      gemv_kernel<7, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    case 8:
      gemv_kernel<8, TOut><<<grid, block, 0, stream>>>(xb, wb, n, k, o);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_gemv(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                        cudaStream_t stream) {
  if (k % 8 != 0 || m < 1 || m > kMaxGemvRows) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return out_f32 ? launch_typed<float>(x, m, w, n, k, out, stream)
                 : launch_typed<__nv_bfloat16>(x, m, w, n, k, out, stream);
}

}  // namespace tessera::cuda
