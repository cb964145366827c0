// Decode-sized GEMV over int4 and fp8 weights on the tensor cores (mma.sync m16n8k16, bf16).
//
// Why tensor cores at batch 1: the CUDA-core GEMV (gemv_quant.cu) spends ~8 instructions per
// weight (decode to f32, zero point, scale, FMA per batch row) and is issue-bound at a third
// of HBM bandwidth for int4. Here the weights are decoded exactly into bf16 with bit tricks
// (two values per instruction), the multiply-adds go to the tensor cores, and the scales are
// applied once per 128-value group in f32.
//
// Layout of one mma: the weights are the A operand (16 output rows x 16 k of one warp tile),
// the batch rows the B operand (columns 0..M-1 of 8). Lane (g, j) = (lane / 4, lane % 4)
// streams weight rows g and g + 8 of the tile and, for g < M, supplies batch row g of x.
// The k order inside an mma is free as long as A and B agree: each lane decodes its 16 bytes
// in the pairs the bit tricks produce, and x is permuted to the same pairs.
//   int4: a k-block is 128 values, lane j owns [32j, 32j + 32); one 32-bit word (8 nibbles,
//         low first) gives bf16 pairs (0,4) (1,5) (2,6) (3,7) through 0x4300 | nibble
//         (= 128 + q exactly): two mmas per word. The 128 + zero point comes off in f32 as
//         (128 + zero) times the block's x sum; the group scale multiplies the block's
//         result (groups of 128 * 2^s).
//   fp8:  a k-block is 64 values, lane j owns [16j, 16j + 16); e4m3 bits moved into a bf16
//         (sign to bit 15, exponent and mantissa to bits 10..4) are the value times 2^-120,
//         subnormals included; one multiply by 2^120 makes them exact. One mma per word.
// x is staged once per CTA in shared memory, already in mma order (with the int4 block sums);
// the warps of a CTA split k and add their partial sums in shared memory. Measured on the
// H200 in bench/results/gpu.md.
#include <cuda_bf16.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma_utils.cuh"
#include "kernels/cuda/quant.h"
#include "kernels/cuda/quant_mma.cuh"

namespace tessera::cuda {
namespace {

using namespace quant_mma;

// One int4 k-block: 16 bytes of weight rows g (w0) and g + 8 (w1), x values [32j, 32j + 32) of
// batch row g in mma order. c += w . x, exact products, f32 sums.
template <bool kRaw>
__device__ __forceinline__ void int4_block(const uint4& w0, const uint4& w1, const uint4 (&xv)[4],
                                           __nv_bfloat162 z0, __nv_bfloat162 z1, float (&c)[4],
                                           float (&c2)[4]) {
  const uint32_t r0[4] = {w0.x, w0.y, w0.z, w0.w}, r1[4] = {w1.x, w1.y, w1.z, w1.w};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t p0[4], p1[4];
    int4_pairs<kRaw>(r0[q], z0, p0);
    int4_pairs<kRaw>(r1[q], z1, p1);
    const uint32_t a1[4] = {p0[0], p1[0], p0[1], p1[1]}, a2[4] = {p0[2], p1[2], p0[3], p1[3]};
    mma_16816_bf16_reorderable(c, a1, xv[q].x, xv[q].y);
    mma_16816_bf16_reorderable(c2, a2, xv[q].z, xv[q].w);  // a second chain: two mmas in flight
  }
}

// Bytes 0 and 2, then 1 and 3, of an e4m3 word as bf16 pairs times 2^-120, made exact by one
// multiply.
__device__ __forceinline__ void fp8_pairs(uint32_t v, uint32_t& p02, uint32_t& p13) {
  const __nv_bfloat162 two120 = __float2bfloat162_rn(0x1p120f);
  p02 = bits(__hmul2(as_bf162(((v << 4) & 0x07F007F0u) | ((v << 8) & 0x80008000u)), two120));
  p13 = bits(__hmul2(as_bf162(((v >> 4) & 0x07F007F0u) | (v & 0x80008000u)), two120));
}

// One fp8 k-block: 16 e4m3 bytes of weight rows g (w0) and g + 8 (w1), x values [16j, 16j + 16)
// of batch row g in mma order. c += w . x (the per-tensor / per-channel scale comes last).
__device__ __forceinline__ void fp8_block(const uint4& w0, const uint4& w1, const uint4 (&xv)[2],
                                          float (&c)[4]) {
  const uint32_t r0[4] = {w0.x, w0.y, w0.z, w0.w}, r1[4] = {w1.x, w1.y, w1.z, w1.w};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t a[4];
    fp8_pairs(r0[q], a[0], a[2]);
    fp8_pairs(r1[q], a[1], a[3]);
    const uint4& x = xv[q / 2];
    mma_16816_bf16_reorderable(c, a, q % 2 ? x.z : x.x, q % 2 ? x.w : x.y);
  }
}

// x staged in shared memory, in mma order and lane-interleaved: within a k-block, vector i of
// lane j sits at 4i + j, so the 4 lanes of a row read 64 contiguous bytes. Rows of k + 32
// values: the 64-byte pad puts two batch rows read in the same phase on disjoint banks. Then
// for int4 each row's sum per 128-value block. At most kMaxStagedX bytes; a larger x is read
// from global memory and permuted per use.
constexpr int kMaxStagedX = 100 * 1024;
constexpr int kXPad = 4;    // uint4s after each staged row
constexpr int kUnroll = 2;  // k-blocks per lane and row in flight, double-buffered
template <QuantKind K>
constexpr int staged_x_bytes(int m, int k) {
  return m * (k / 8 + kXPad) * 16 + (K == QuantKind::kInt4 ? m * (k / block_values<K>()) * 4 : 0);
}

// M (1..8 batch rows) is a run-time value: it only masks lanes and bounds the staging loop,
// and one kernel per count would multiply the binary's size by eight.
template <QuantKind K, int W, bool kStaged, typename TOut>
__global__ void __launch_bounds__(W * 32)
    gemv_quant_mma_kernel(const bf16* __restrict__ x, const WeightGroup p, const int M) {
  constexpr int kBlock = block_values<K>(), kX = x_vecs<K>();
  __shared__ float partial[W][32][4];
  extern __shared__ uint4 x_staged[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, j = lane & 3;
  // The A rows of this lane: row0 + g of weight a0 and row1 + g of weight a1 (the same weight
  // 8 rows on, or gate and up); rows past the end are read, never stored. Static indices
  // only: a dynamic one copies the parameters to local memory.
  QuantWeightArgs a0 = p.w[0];
  void* out_v = p.out[0];
  int tile = blockIdx.x;
#pragma unroll
  for (int i = 1; i < kMaxGroupWeights; ++i) {
    if (!p.gate_up && i < p.count && int(blockIdx.x) >= p.start[i]) {
      a0 = p.w[i];
      out_v = p.out[i];
      tile = blockIdx.x - p.start[i];
    }
  }
  const QuantWeightArgs a1 = p.gate_up ? p.w[1] : a0;
  const QuantWeightArgs& a = a0;  // k, group size, zero points and layout: the same for both
  const int row0 = p.gate_up ? tile * 8 : tile * kTileRows, row1 = p.gate_up ? row0 : row0 + 8;
  const int wrow0 = min(row0 + g, a0.n - 1), wrow1 = min(row1 + g, a1.n - 1);
  const int blocks = a.k / kBlock;
  // Each warp streams a contiguous run of blocks: [begin, end).
  const int per_warp = (blocks + W - 1) / W;
  const int begin = min(warp * per_warp, blocks), end = min(begin + per_warp, blocks);
  const uint4 *wp0, *wp1;
  int stride;
  if (K == QuantKind::kInt4 && a.tiled) {
    // Rows r .. r + 7 (r a multiple of 8) are half r % 16 / 8 of tile r / 16.
    const auto half = [&](const QuantWeightArgs& w, int r) {
      return static_cast<const uint4*>(w.data) + size_t(r / 16) * blocks * 64 + (r % 16) / 8 * 32 +
             lane;
    };
    wp0 = half(a0, row0);
    wp1 = half(a1, row1);
    stride = 64;
  } else {
    const size_t row_bytes = K == QuantKind::kInt4 ? size_t(a.k) / 2 : size_t(a.k);
    wp0 = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(a0.data) + wrow0 * row_bytes) +
          j;
    wp1 = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(a1.data) + wrow1 * row_bytes) +
          j;
    stride = 4;
  }
  // The weights are never written by a predecessor: their first loads may precede pdl_wait.
  uint4 cur0[kUnroll], cur1[kUnroll];
  load_round(cur0, wp0, begin, end, stride);
  load_round(cur1, wp1, begin, end, stride);
  pdl_wait();
  pdl_launch_dependents();

  // B column g is batch row g; lanes of columns >= M read nothing (their C columns are never
  // stored).
  const uint4* xg = reinterpret_cast<const uint4*>(x);
  const int per_row = a.k / 8;  // uint4s per x row
  const int gx = g < M ? g : 0;
  const uint4* xrow;
  const float* xsum = nullptr;
  if constexpr (kStaged) {
    const int pitch = per_row + kXPad;
    float* sums = reinterpret_cast<float*>(x_staged + M * pitch);
    // Sixteen consecutive lanes hold one 128-value block of a row (per_row and the CTA are
    // multiples of 16): int4 sums it with shuffles as it goes.
    for (int r = 0; r < M; ++r) {
#pragma unroll 4
      for (int c0 = 0; c0 < per_row; c0 += W * 32) {
        const int c = c0 + threadIdx.x;
        const uint4 v = c < per_row ? __ldg(xg + size_t(r) * per_row + c) : make_uint4(0, 0, 0, 0);
        const int in_block = c % (4 * kX);  // vector (in_block % kX) of lane in_block / kX
        if (c < per_row) {
          x_staged[r * pitch + (c - in_block) + (in_block % kX) * 4 + in_block / kX] =
              to_mma_order<K>(v);
        }
        if constexpr (K == QuantKind::kInt4) {
          float f[8];
          unpack8<bf16>(v, f);
          float sum = ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
#pragma unroll
          for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o, 16);
          if (c < per_row && c % 16 == 0) sums[r * blocks + c / 16] = sum;
        }
      }
    }
    __syncthreads();
    xrow = x_staged + gx * pitch + j;
    xsum = sums;
  } else {
    xrow = xg + size_t(gx) * per_row + j * kX;
  }

  // C of the lane: rows g, g + 8 (weights wrow0, wrow1) x columns 2j, 2j + 1 (batch rows).
  const int b_lo = min(2 * j, M - 1), b_hi = min(2 * j + 1, M - 1);
  // int4: group g of a row is blocks [g << group_shift, (g + 1) << group_shift).
  const int group_shift = a.group_size > 0 ? __ffs(a.group_size / kBlock) - 1 : 0;
  const float* sc0 = a0.scales + size_t(wrow0) * a0.num_groups;
  const float* sc1 = a1.scales + size_t(wrow1) * a1.num_groups;
  const uint8_t* zp0 = a0.zeros + size_t(wrow0) * a0.num_groups;
  const uint8_t* zp1 = a1.zeros + size_t(wrow1) * a1.num_groups;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  for (int first = begin; first < end; first += kUnroll) {
    uint4 nxt0[kUnroll], nxt1[kUnroll];
    load_round(nxt0, wp0, first + kUnroll, end, stride);
    load_round(nxt1, wp1, first + kUnroll, end, stride);
    // The round's group scales and zero points, before any math.
    float s0[kUnroll], s1[kUnroll], z0[kUnroll], z1[kUnroll];
    if constexpr (K == QuantKind::kInt4) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int grp = a.group_size > 0 ? min(first + u, end - 1) >> group_shift : 0;
        s0[u] = __ldg(sc0 + grp);
        s1[u] = __ldg(sc1 + grp);
        z0[u] = a.has_zeros ? float(__ldg(zp0 + grp)) : 8.f;
        z1[u] = a.has_zeros ? float(__ldg(zp1 + grp)) : 8.f;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int b = first + u;
      if (b < end) {
        const uint4* xp = xrow + b * (kBlock / 8);
        uint4 xv[kX];
#pragma unroll
        for (int i = 0; i < kX; ++i) {
          xv[i] = g >= M    ? make_uint4(0u, 0u, 0u, 0u)
                  : kStaged ? xp[4 * i]
                            : to_mma_order<K>(__ldg(xp + i));
        }
        if constexpr (K == QuantKind::kInt4) {
          float blk[4] = {0.f, 0.f, 0.f, 0.f}, blk2[4] = {0.f, 0.f, 0.f, 0.f};
          int4_block<kStaged>(cur0[u], cur1[u], xv, __float2bfloat162_rn(128.f + z0[u]),
                              __float2bfloat162_rn(128.f + z1[u]), blk, blk2);
          float d[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) d[i] = blk[i] + blk2[i];
          if constexpr (kStaged) {
            const float x_lo = xsum[b_lo * blocks + b], x_hi = xsum[b_hi * blocks + b];
            d[0] = fmaf(-(128.f + z0[u]), x_lo, d[0]);
            d[1] = fmaf(-(128.f + z0[u]), x_hi, d[1]);
            d[2] = fmaf(-(128.f + z1[u]), x_lo, d[2]);
            d[3] = fmaf(-(128.f + z1[u]), x_hi, d[3]);
          }
          acc[0] = fmaf(s0[u], d[0], acc[0]);
          acc[1] = fmaf(s0[u], d[1], acc[1]);
          acc[2] = fmaf(s1[u], d[2], acc[2]);
          acc[3] = fmaf(s1[u], d[3], acc[3]);
        } else {
          fp8_block(cur0[u], cur1[u], xv, c);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur0[u] = nxt0[u], cur1[u] = nxt1[u];
  }
  if constexpr (K == QuantKind::kFp8) {
    const float t0 = __ldg(a0.scales + (a0.per_channel ? wrow0 : 0));
    const float t1 = __ldg(a1.scales + (a1.per_channel ? wrow1 : 0));
    acc[0] = c[0] * t0, acc[1] = c[1] * t0, acc[2] = c[2] * t1, acc[3] = c[3] * t1;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) partial[warp][lane][i] = acc[i];
  __syncthreads();
  if (warp != 0) return;
  float sum[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int w = 0; w < W; ++w) {
#pragma unroll
    for (int i = 0; i < 4; ++i) sum[i] += partial[w][lane][i];
  }
  TOut* out = static_cast<TOut*>(out_v);
  if (p.gate_up) {
    // C rows g and g + 8 are gate and up of output row row0 + g: silu(gate) * up.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = row0 + g, batch = 2 * j + i;
      if (batch < M && row < a0.n) {
        out[size_t(batch) * a0.n + row] = from_float<TOut>(silu(sum[i]) * sum[2 + i]);
      }
    }
    return;
  }
  // C[row][col]: weight row row0 + g (+ 8), batch row 2j (+ 1).
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = row0 + g + (i >= 2 ? 8 : 0), batch = 2 * j + (i & 1);
    if (batch < M && row < a.n) out[size_t(batch) * a.n + row] = from_float<TOut>(sum[i]);
  }
}

template <QuantKind K, int W, bool kStaged, typename TOut>
cudaError_t launch_one(const void* x, int m, const WeightGroup& p, int tiles, cudaStream_t stream) {
  auto* kernel = gemv_quant_mma_kernel<K, W, kStaged, TOut>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxStagedX);
  if (attr != cudaSuccess) return attr;
  return launch_kernel(kernel, dim3(tiles), dim3(W * 32),
                       kStaged ? staged_x_bytes<K>(m, p.w[0].k) : 0, stream,
                       static_cast<const bf16*>(x), p, m);
}

template <QuantKind K, typename TOut>
cudaError_t launch_kind(const void* x, int m, const WeightGroup& p, cudaStream_t stream) {
  const int tiles = p.start[p.count];
  if (tiles == 0) return cudaSuccess;
  const bool staged = staged_x_bytes<K>(m, p.w[0].k) <= kMaxStagedX;
  auto launch = [&](auto warps) {
    constexpr int W = decltype(warps)::value;
    return staged ? launch_one<K, W, true, TOut>(x, m, p, tiles, stream)
                  : launch_one<K, W, false, TOut>(x, m, p, tiles, stream);
  };
  // Few tiles (small n): more warps per tile split k finer, so every SM has work. The f32
  // outputs are the LM head's: many tiles.
  if constexpr (std::is_same_v<TOut, bf16>) {
    if (tiles < 132) return launch(std::integral_constant<int, 16>{});
    if (tiles < 400) return launch(std::integral_constant<int, 8>{});
  }
  return launch(std::integral_constant<int, 4>{});
}

template <typename TOut>
cudaError_t launch_group(const void* x, int m, const WeightGroup& p, cudaStream_t stream) {
  if (m < 1 || m > kMaxQuantGemvRows) return cudaErrorInvalidValue;
  return p.w[0].kind == QuantKind::kFp8 ? launch_kind<QuantKind::kFp8, TOut>(x, m, p, stream)
                                        : launch_kind<QuantKind::kInt4, TOut>(x, m, p, stream);
}

// TESSERA_QUANT_GEMV=simt: the CUDA-core kernel for every quantized weight (measurements).
bool simt_only() {
  static const bool v = [] {
    const char* e = std::getenv("TESSERA_QUANT_GEMV");
    return e != nullptr && std::strcmp(e, "simt") == 0;
  }();
  return v;
}

// Weights one launch can take together: each supported, the same kind, k and int4 layout.
bool same_family(const QuantWeightArgs& a, const QuantWeightArgs& b) {
  return gemv_quant_mma_supported(a) && gemv_quant_mma_supported(b) && a.kind == b.kind &&
         a.k == b.k && a.group_size == b.group_size && a.has_zeros == b.has_zeros &&
         a.tiled == b.tiled;
}

}  // namespace

bool int4_tiled(const QuantWeightArgs& w) {
  return w.kind == QuantKind::kInt4 && gemv_quant_mma_supported(w);
}

size_t int4_tiled_bytes(int n, int k) {
  return (size_t(n) + kTileRows - 1) / kTileRows * kTileRows * size_t(k) / 2;
}

void tile_int4(const uint8_t* src, int n, int k, uint8_t* dst) {
  std::memset(dst, 0, int4_tiled_bytes(n, k));
  const size_t row_bytes = size_t(k) / 2;
  for (int r = 0; r < n; ++r) {
    // 16-byte runs stay together: value pairs (2i, 2i + 1) share a byte in both layouts.
    for (int c = 0; c < k; c += 32) {
      std::memcpy(dst + int4_tiled_offset(r, c, k), src + r * row_bytes + c / 2, 16);
    }
  }
}

bool gemv_quant_mma_supported(const QuantWeightArgs& w) {
  if (simt_only() || w.n <= 0 || w.k <= 0) return false;
  if (w.kind == QuantKind::kFp8) return w.k % block_values<QuantKind::kFp8>() == 0;
  return w.kind == QuantKind::kInt4 && w.g_idx == nullptr &&
         w.k % block_values<QuantKind::kInt4>() == 0 &&
         (w.group_size == 0 ||
          (w.group_size % block_values<QuantKind::kInt4>() == 0 &&
           std::has_single_bit(unsigned(w.group_size / block_values<QuantKind::kInt4>()))));
}

cudaError_t launch_gemv_quant_mma(const void* x, int m, const QuantWeightArgs& w, void* out,
                                  bool out_f32, cudaStream_t stream) {
  if (!gemv_quant_mma_supported(w)) return cudaErrorInvalidValue;
  const WeightGroup p = single_group(w, out, kTileRows);
  return out_f32 ? launch_group<float>(x, m, p, stream) : launch_group<bf16>(x, m, p, stream);
}

bool gemv_quant_mma_multi_supported(const QuantWeightArgs* ws, int count) {
  return group_fits(ws, count, same_family);
}

cudaError_t launch_gemv_quant_mma_multi(const void* x, int m, const QuantWeightArgs* ws,
                                        void* const* outs, int count, cudaStream_t stream) {
  if (!gemv_quant_mma_multi_supported(ws, count)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, stacked_group(ws, outs, count, kTileRows), stream);
}

bool gemv_quant_mma_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up) {
  return same_family(gate, up) && gate.n == up.n;
}

cudaError_t launch_gemv_quant_mma_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                          const QuantWeightArgs& up, void* out,
                                          cudaStream_t stream) {
  if (!gemv_quant_mma_gate_up_supported(gate, up)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, gate_up_group(gate, up, out, kTileRows / 2), stream);
}

}  // namespace tessera::cuda
