#include <cuda_bf16.h>

#include "kernels/cuda/gemm_invariant.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma_utils.cuh"

namespace tessera::cuda {
namespace {

constexpr int kWarps = 4;   // the fixed k split inside a CTA (part of the reduction order)
constexpr int kChunk = 32;  // k per warp step: two m16n8k16 MMAs

// A lane's 16-byte piece of a chunk: 8 consecutive k values of one row (zeros when out of
// range). Lane 4g + q holds k = chunk + 8q .. + 8 of rows g (and g + 8); the two MMAs of the
// chunk take its values {0..3} and {4..7}. A and B see the same k permutation, so each
// MMA still sums matching products; the order is fixed by k alone.
__device__ __forceinline__ uint4 load_piece(const __nv_bfloat16* base, int row, int rows, int k0,
                                            int k) {
  if (row >= rows || k0 >= k) return make_uint4(0u, 0u, 0u, 0u);
  return __ldg(reinterpret_cast<const uint4*>(base + size_t(row) * k + k0));
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// CTA tile: 16 * MT rows x 8 * NT columns; 4 warps split k as described in the header.
template <int MT, int NT, bool kOutF32>
__global__ void __launch_bounds__(kWarps * 32)
    gemm_invariant_kernel(const __nv_bfloat16* __restrict__ x, int m,
                          const __nv_bfloat16* __restrict__ w, int n, int k, void* out) {
  pdl_wait();
  pdl_launch_dependents();
  constexpr int kTileValues = MT * NT * 4 * 32;  // accumulator values per warp
  __shared__ float partial[kWarps][kTileValues];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, q = lane & 3;
  const int row0 = blockIdx.y * 16 * MT, col0 = blockIdx.x * 8 * NT;

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

  const int chunks = (k + kChunk - 1) / kChunk;
#pragma unroll 2
  for (int c = warp; c < chunks; c += kWarps) {
    const int k0 = c * kChunk + q * 8;
    uint4 a_lo[MT], a_hi[MT], b[NT];
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      a_lo[i] = load_piece(x, row0 + i * 16 + g, m, k0, k);
      a_hi[i] = load_piece(x, row0 + i * 16 + g + 8, m, k0, k);
    }
#pragma unroll
    for (int j = 0; j < NT; ++j) b[j] = load_piece(w, col0 + j * 8 + g, n, k0, k);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const uint32_t a[4] = {word(a_lo[i], 2 * h), word(a_hi[i], 2 * h), word(a_lo[i], 2 * h + 1),
                               word(a_hi[i], 2 * h + 1)};
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          mma_16816<__nv_bfloat16>(acc[i][j], a, word(b[j], 2 * h), word(b[j], 2 * h + 1));
        }
      }
    }
  }

  // Warp sums in fragment order, then each value reduced over the warps in warp order.
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) partial[warp][((i * NT + j) * 4 + r) * 32 + lane] = acc[i][j][r];
  __syncthreads();
  for (int e = threadIdx.x; e < kTileValues; e += kWarps * 32) {
    float v = partial[0][e];
#pragma unroll
    for (int ww = 1; ww < kWarps; ++ww) v += partial[ww][e];
    const int l = e % 32, r = (e / 32) % 4, j = (e / 128) % NT, i = e / (128 * NT);
    const int row = row0 + i * 16 + (l >> 2) + (r >= 2 ? 8 : 0);
    const int col = col0 + j * 8 + (l & 3) * 2 + (r & 1);
    if (row >= m || col >= n) continue;
    if constexpr (kOutF32) {
      static_cast<float*>(out)[size_t(row) * n + col] = v;
    } else {
      static_cast<__nv_bfloat16*>(out)[size_t(row) * n + col] = __float2bfloat16_rn(v);
    }
  }
}

template <int MT, int NT>
cudaError_t launch_tiles(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                         cudaStream_t stream) {
  const dim3 grid((n + 8 * NT - 1) / (8 * NT), (m + 16 * MT - 1) / (16 * MT));
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  const auto* wb = static_cast<const __nv_bfloat16*>(w);
  if (out_f32) {
    return launch_kernel(gemm_invariant_kernel<MT, NT, true>, grid, dim3(kWarps * 32), 0, stream,
                         xb, m, wb, n, k, out);
  }
  return launch_kernel(gemm_invariant_kernel<MT, NT, false>, grid, dim3(kWarps * 32), 0, stream, xb,
                       m, wb, n, k, out);
}

}  // namespace

cudaError_t launch_gemm_invariant(const void* x, int m, const void* w, int n, int k, void* out,
                                  bool out_f32, cudaStream_t stream) {
  if (m < 0 || n < 0 || k <= 0 || k % 8 != 0) return cudaErrorInvalidValue;
  if (m == 0 || n == 0) return cudaSuccess;
  if (m > 65535 * 16) return cudaErrorInvalidValue;  // grid.y
  // Tile shapes only pick which CTA computes an element (the order is the same in all):
  // tall tiles reuse weight loads across rows, narrow ones give small n enough CTAs.
  const bool narrow = n < 4096;
  if (m <= 16) {
    return narrow ? launch_tiles<1, 2>(x, m, w, n, k, out, out_f32, stream)
                  : launch_tiles<1, 4>(x, m, w, n, k, out, out_f32, stream);
  }
  if (m <= 32) {
    return narrow ? launch_tiles<2, 2>(x, m, w, n, k, out, out_f32, stream)
                  : launch_tiles<2, 4>(x, m, w, n, k, out, out_f32, stream);
  }
  return launch_tiles<4, 4>(x, m, w, n, k, out, out_f32, stream);
}

}  // namespace tessera::cuda
