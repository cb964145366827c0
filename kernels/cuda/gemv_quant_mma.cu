// Decode-sized GEMV over int4 and fp8 weights on the tensor cores (mma.sync m16n8k16, bf16).
//
// Why tensor cores at batch 1: the CUDA-core GEMV (gemv_quant.cu) spends ~8 instructions per
// weight (decode to f32, zero point, scale, FMA per batch row) and is issue-bound at a third
// of HBM bandwidth for int4. Here the weights are decoded exactly into bf16 with bit tricks
// (two values per instruction), the multiply-adds go to the tensor cores, and the scales are
// applied once per 128-value group in f32.
//
// Layout of one mma: the weights are the B operand (16 k x 8 columns = 8 output rows of one
// warp tile), the batch rows the A operand (rows 0..M-1 of 16, the rest zero). Lane (g, j) =
// (lane / 4, lane % 4) streams weight row g of the tile and, for g < M, batch row g of x.
// The k order inside an mma is free as long as A and B agree: each lane decodes its 16 bytes
// in the pairs the bit tricks produce and permutes its x values to the same pairs (prmt).
//   int4: a k-block is 128 values, lane j owns [32j, 32j + 32); one 32-bit word (8 nibbles,
//         low first) gives bf16 pairs (0,4) (1,5) (2,6) (3,7) through 0x4300 | nibble
//         (= 128 + q exactly), minus 128 + zero point: two mmas per word, exact integers;
//         the group scale multiplies the block's f32 result (groups are multiples of 128).
//   fp8:  a k-block is 64 values, lane j owns [16j, 16j + 16); e4m3 bits moved into a bf16
//         (sign to bit 15, exponent and mantissa to bits 10..4) are the value times 2^-120,
//         subnormals included; one multiply by 2^120 makes them exact. One mma per word.
// The warps of a CTA split k and add their partial sums in shared memory.
#include <cuda_bf16.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant.h"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kTileRows = 8;  // output rows per warp tile (the mma's N)

template <QuantKind K>
constexpr int block_values() {
  return K == QuantKind::kInt4 ? 128 : 64;  // 4 lanes x 16 bytes
}

// c[16x8] += a[16x16] * b[16x8], bf16 in, f32 out. Not volatile (unlike mma_utils.cuh's): a
// pure function of its operands, so the compiler may interleave the mmas of several blocks
// with their decoding.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

__device__ __forceinline__ uint32_t bits(__nv_bfloat162 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ __nv_bfloat162 as_bf162(uint32_t v) {
  return *reinterpret_cast<__nv_bfloat162*>(&v);
}

template <QuantKind K>
constexpr int x_vecs() {
  return block_values<K>() / 4 / 8;  // x uint4s per lane and k-block
}

// Eight x values (one uint4: words (x0,x1) (x2,x3) (x4,x5) (x6,x7)) in the order the A operand
// takes them, matching the pairs the weight decoders below produce:
//   int4: (x0,x4) (x1,x5) | (x2,x6) (x3,x7)   -> a[0], a[2] of the word's first | second mma
//   fp8:  (x0,x2) (x1,x3) | (x4,x6) (x5,x7)   -> a[0], a[2] of word 2i | word 2i + 1
template <QuantKind K>
__device__ __forceinline__ uint4 to_mma_order(const uint4& v) {
  if constexpr (K == QuantKind::kInt4) {
    return make_uint4(prmt(v.x, v.z, 0x5410), prmt(v.x, v.z, 0x7632), prmt(v.y, v.w, 0x5410),
                      prmt(v.y, v.w, 0x7632));
  } else {
    return make_uint4(prmt(v.x, v.y, 0x5410), prmt(v.x, v.y, 0x7632), prmt(v.z, v.w, 0x5410),
                      prmt(v.z, v.w, 0x7632));
  }
}

// One int4 k-block: 16 bytes of weight row g, x values [32j, 32j + 32) of batch row g in mma
// order. kRaw: the weights enter as 128 + q (no subtraction; the caller takes (128 + zero)
// times the block's x sum off the result); else as q - zero, exact either way.
template <bool kRaw>
__device__ __forceinline__ void int4_block(const uint4& w, const uint4 (&xv)[4],
                                           __nv_bfloat162 zero128, float (&c)[4], float (&c2)[4]) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const uint32_t v = words[q];
    // (v >> s) & 0x000F000F | 0x43004300: nibbles s/4 and s/4 + 4 as bf16 128 + q.
    uint32_t p[4] = {(v & 0x000F000Fu) | 0x43004300u, ((v >> 4) & 0x000F000Fu) | 0x43004300u,
                     ((v >> 8) & 0x000F000Fu) | 0x43004300u,
                     ((v >> 12) & 0x000F000Fu) | 0x43004300u};
    if constexpr (!kRaw) {
#pragma unroll
      for (int i = 0; i < 4; ++i) p[i] = bits(__hsub2(as_bf162(p[i]), zero128));
    }
    const uint32_t a1[4] = {xv[q].x, 0u, xv[q].y, 0u}, a2[4] = {xv[q].z, 0u, xv[q].w, 0u};
    mma_bf16(c, a1, p[0], p[1]);
    mma_bf16(c2, a2, p[2], p[3]);  // a second chain: two mmas in flight
  }
}

// One fp8 k-block: 16 e4m3 bytes of weight row g, x values [16j, 16j + 16) of batch row g in
// mma order. c += w . x over the block (the per-tensor / per-channel scale comes at the end).
__device__ __forceinline__ void fp8_block(const uint4& w, const uint4 (&xv)[2], float (&c)[4]) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
  const __nv_bfloat162 two120 = __float2bfloat162_rn(0x1p120f);
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const uint32_t v = words[q];
    // Bytes 0 and 2, then 1 and 3, as bf16 times 2^-120.
    const uint32_t p02 = ((v << 4) & 0x07F007F0u) | ((v << 8) & 0x80008000u);
    const uint32_t p13 = ((v >> 4) & 0x07F007F0u) | (v & 0x80008000u);
    const uint32_t b0 = bits(__hmul2(as_bf162(p02), two120));
    const uint32_t b1 = bits(__hmul2(as_bf162(p13), two120));
    const uint4& x = xv[q / 2];
    const uint32_t a[4] = {q % 2 ? x.z : x.x, 0u, q % 2 ? x.w : x.y, 0u};
    mma_bf16(c, a, b0, b1);
  }
}

// This lane's 16 bytes of blocks first .. first + U - 1 (zeros from `end` on); `stride` is
// the distance between one block and the next in uint4s (4 in rows, 32 tiled).
template <int U>
__device__ __forceinline__ void load_round(uint4 (&r)[U], const uint4* w, int first, int end,
                                           int stride) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int b = first + u;
    r[u] = b < end ? __ldcs(w + size_t(b) * stride) : make_uint4(0u, 0u, 0u, 0u);
  }
}

// x staged in shared memory, in mma order and lane-interleaved: within a k-block, vector i of
// lane j sits at 4i + j, so the 4 lanes of a row read 64 contiguous bytes. Rows of k + 32
// values: the 64-byte pad puts two batch rows read in the same phase on disjoint banks. Then
// for int4 each row's sum per 128-value block. At most kMaxStagedX bytes; a larger x is read
// from global memory and permuted per use.
constexpr int kMaxStagedX = 100 * 1024;
constexpr int kXPad = 4;    // uint4s after each staged row
constexpr int kUnroll = 4;  // 16-byte weight loads per lane in flight, double-buffered
template <QuantKind K>
constexpr int staged_x_bytes(int m, int k) {
  return m * (k / 8 + kXPad) * 16 + (K == QuantKind::kInt4 ? m * (k / block_values<K>()) * 4 : 0);
}

template <QuantKind K, int M, int W, bool kStaged, typename TOut>
__global__ void __launch_bounds__(W * 32)
    gemv_quant_mma_kernel(const bf16* __restrict__ x, const QuantWeightArgs a,
                          TOut* __restrict__ out) {
  constexpr int kBlock = block_values<K>(), kX = x_vecs<K>();
  __shared__ float partial[W][32][2];
  extern __shared__ uint4 x_staged[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, j = lane & 3;
  const int row0 = blockIdx.x * kTileRows;
  const int wrow = min(row0 + g, a.n - 1);  // rows past the end are read, never stored
  const int blocks = a.k / kBlock;
  // Each warp streams a contiguous run of blocks: [begin, end).
  const int per_warp = (blocks + W - 1) / W;
  const int begin = min(warp * per_warp, blocks), end = min(begin + per_warp, blocks);
  const uint4* wp;
  int stride;
  if (K == QuantKind::kInt4 && a.tiled) {
    wp = static_cast<const uint4*>(a.data) + size_t(blockIdx.x) * blocks * 32 + lane;
    stride = 32;
  } else {
    const size_t row_bytes = K == QuantKind::kInt4 ? size_t(a.k) / 2 : size_t(a.k);
    wp = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(a.data) + wrow * row_bytes) + j;
    stride = 4;
  }
  // The weights are never written by a predecessor: their first loads may precede pdl_wait.
  uint4 cur[kUnroll];
  load_round(cur, wp, begin, end, stride);
  pdl_wait();
  pdl_launch_dependents();

  // A rows g >= M take any batch row: their C rows are never stored.
  const int gx = g < M ? g : M - 1;
  const uint4* xg = reinterpret_cast<const uint4*>(x);
  const int per_row = a.k / 8;  // uint4s per x row
  const uint4* xrow;
  const float* xsum = nullptr;
  if constexpr (kStaged) {
    const int pitch = per_row + kXPad;
    float* sums = reinterpret_cast<float*>(x_staged + M * pitch);
    // Sixteen consecutive lanes hold one 128-value block of a row (per_row and the CTA are
    // multiples of 16): int4 sums it with shuffles as it goes.
#pragma unroll
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
    xsum = sums + gx * blocks;
  } else {
    xrow = xg + size_t(gx) * per_row + j * kX;
  }

  // Output columns 2j and 2j + 1 of the tile are weight rows row0 + 2j, row0 + 2j + 1.
  const int r_lo = min(row0 + 2 * j, a.n - 1), r_hi = min(row0 + 2 * j + 1, a.n - 1);
  // int4: group g of a row is blocks [g << group_shift, (g + 1) << group_shift).
  const int group_shift = a.group_size > 0 ? __ffs(a.group_size / kBlock) - 1 : 0;
  const float* sc_lo = a.scales + size_t(r_lo) * a.num_groups;
  const float* sc_hi = a.scales + size_t(r_hi) * a.num_groups;
  // Staged: the zero points of the output rows (taken off with the x sums); else of the
  // lane's own weight row.
  const uint8_t* zp_lo = a.zeros + size_t(kStaged ? r_lo : wrow) * a.num_groups;
  const uint8_t* zp_hi = a.zeros + size_t(kStaged ? r_hi : wrow) * a.num_groups;
  float acc[2] = {0.f, 0.f};
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  for (int first = begin; first < end; first += kUnroll) {
    uint4 nxt[kUnroll];
    load_round(nxt, wp, first + kUnroll, end, stride);
    // The round's group scales and zero points, before any math.
    float s_lo[kUnroll], s_hi[kUnroll], z_lo[kUnroll], z_hi[kUnroll];
    if constexpr (K == QuantKind::kInt4) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int grp = a.group_size > 0 ? min(first + u, end - 1) >> group_shift : 0;
        s_lo[u] = __ldg(sc_lo + grp);
        s_hi[u] = __ldg(sc_hi + grp);
        z_lo[u] = a.has_zeros ? float(__ldg(zp_lo + grp)) : 8.f;
        z_hi[u] = a.has_zeros ? float(__ldg(zp_hi + grp)) : 8.f;
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
          // Staged: only the lanes of real batch rows load (a phase without one costs nothing).
          xv[i] = !kStaged ? to_mma_order<K>(__ldg(xp + i))
                  : g < M  ? xp[4 * i]
                           : make_uint4(0u, 0u, 0u, 0u);
        }
        if constexpr (K == QuantKind::kInt4) {
          float blk[4] = {0.f, 0.f, 0.f, 0.f}, blk2[4] = {0.f, 0.f, 0.f, 0.f};
          int4_block<kStaged>(cur[u], xv, __float2bfloat162_rn(128.f + z_lo[u]), blk, blk2);
          float d_lo = blk[0] + blk2[0], d_hi = blk[1] + blk2[1];
          if constexpr (kStaged) {
            const float xs = xsum[b];
            d_lo = fmaf(-(128.f + z_lo[u]), xs, d_lo);
            d_hi = fmaf(-(128.f + z_hi[u]), xs, d_hi);
          }
          acc[0] = fmaf(s_lo[u], d_lo, acc[0]);
          acc[1] = fmaf(s_hi[u], d_hi, acc[1]);
        } else {
          fp8_block(cur[u], xv, c);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur[u] = nxt[u];
  }
  if constexpr (K == QuantKind::kFp8) {
    acc[0] = c[0] * __ldg(a.scales + (a.per_channel ? r_lo : 0));
    acc[1] = c[1] * __ldg(a.scales + (a.per_channel ? r_hi : 0));
  }
  partial[warp][lane][0] = acc[0];
  partial[warp][lane][1] = acc[1];
  __syncthreads();
  if (warp != 0 || g >= M) return;
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int w = 0; w < W; ++w) {
    s0 += partial[w][lane][0];
    s1 += partial[w][lane][1];
  }
  // Row g of C is batch row g; its columns 2j, 2j + 1 are output rows row0 + 2j, + 1.
  TOut* o = out + size_t(g) * a.n;
  if (row0 + 2 * j < a.n) o[row0 + 2 * j] = from_float<TOut>(s0);
  if (row0 + 2 * j + 1 < a.n) o[row0 + 2 * j + 1] = from_float<TOut>(s1);
}

template <int M = 1, typename F>
cudaError_t with_rows(int m, F&& launch) {
  if constexpr (M > kMaxQuantGemvRows) {
    return cudaErrorInvalidValue;
  } else {
    if (m != M) return with_rows<M + 1>(m, launch);
    return launch(std::integral_constant<int, M>{});
  }
}

template <QuantKind K, int M, int W, bool kStaged, typename TOut>
cudaError_t launch_one(const void* x, const QuantWeightArgs& a, void* out, int tiles,
                       cudaStream_t stream) {
  auto* kernel = gemv_quant_mma_kernel<K, M, W, kStaged, TOut>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxStagedX);
  if (attr != cudaSuccess) return attr;
  return launch_kernel(kernel, dim3(tiles), dim3(W * 32), kStaged ? staged_x_bytes<K>(M, a.k) : 0,
                       stream, static_cast<const bf16*>(x), a, static_cast<TOut*>(out));
}

template <QuantKind K, typename TOut>
cudaError_t launch_kind(const void* x, int m, const QuantWeightArgs& a, void* out,
                        cudaStream_t stream) {
  const int tiles = (a.n + kTileRows - 1) / kTileRows;
  return with_rows(m, [&](auto rows) {
    constexpr int M = decltype(rows)::value;
    const bool staged = staged_x_bytes<K>(M, a.k) <= kMaxStagedX;
    // Few tiles (small n): more warps per tile split k finer, so every SM has work.
    if (tiles < 2 * 132) {
      return staged ? launch_one<K, M, 8, true, TOut>(x, a, out, tiles, stream)
                    : launch_one<K, M, 8, false, TOut>(x, a, out, tiles, stream);
    }
    return staged ? launch_one<K, M, 4, true, TOut>(x, a, out, tiles, stream)
                  : launch_one<K, M, 4, false, TOut>(x, a, out, tiles, stream);
  });
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
  static const bool off = [] {
    const char* v = std::getenv("TESSERA_QUANT_GEMV");
    return v != nullptr && std::strcmp(v, "simt") == 0;
  }();
  if (off || w.n <= 0 || w.k <= 0) return false;
  if (w.kind == QuantKind::kFp8) return w.k % block_values<QuantKind::kFp8>() == 0;
  return w.kind == QuantKind::kInt4 && w.g_idx == nullptr &&
         w.k % block_values<QuantKind::kInt4>() == 0 &&
         (w.group_size == 0 || (w.group_size % block_values<QuantKind::kInt4>() == 0 &&
                                ((w.group_size / block_values<QuantKind::kInt4>()) &
                                 (w.group_size / block_values<QuantKind::kInt4>() - 1)) == 0));
}

cudaError_t launch_gemv_quant_mma(const void* x, int m, const QuantWeightArgs& w, void* out,
                                  bool out_f32, cudaStream_t stream) {
  if (!gemv_quant_mma_supported(w) || m < 1 || m > kMaxQuantGemvRows) {
    return cudaErrorInvalidValue;
  }
  if (w.kind == QuantKind::kFp8) {
    return out_f32 ? launch_kind<QuantKind::kFp8, float>(x, m, w, out, stream)
                   : launch_kind<QuantKind::kFp8, bf16>(x, m, w, out, stream);
  }
  return out_f32 ? launch_kind<QuantKind::kInt4, float>(x, m, w, out, stream)
                 : launch_kind<QuantKind::kInt4, bf16>(x, m, w, out, stream);
}

}  // namespace tessera::cuda
