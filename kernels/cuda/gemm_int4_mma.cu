// Batches of 9-64 rows over tiled int4 weights on the tensor cores, each weight read once.
//
// Why not the decode GEMV (gemv_quant_mma.cu): one mma's N is 8 batch rows, and taking more
// rows in chunks of 8 streams the whole weight once per chunk (64 rows: 8x the bytes, 25.8 ms
// per step of the 8B shape against fp8's 7.2, bench/results/gpu.md). Here a warp keeps up to
// 8 column tiles (64 batch rows) of accumulators, so each weight word is decoded once and
// feeds up to 16 mmas. The warps of a CTA own consecutive 16-row tiles (not a split of k, as
// in the GEMV) and share x: chunks of kChunk k-blocks of every batch row are staged in shared
// memory by cp.async, double-buffered, in the GEMV's lane interleave (the mma order is applied
// as x is read). The weights stream from HBM into registers two rounds ahead; the zero point
// is taken off in bf16 before the mma (exact: small integers), the group scale in f32 per
// k-block. Few tiles split k across CTAs (see kMaxSplits).
// Measured on the H200 in bench/results/gpu.md.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma_utils.cuh"
#include "kernels/cuda/quant.h"
#include "kernels/cuda/quant_mma.cuh"

namespace tessera::cuda {
namespace {

using namespace quant_mma;

constexpr int kBlock = block_values<QuantKind::kInt4>();  // values per k-block
constexpr int kBlockVecs = kBlock / 8;                    // x uint4s per row and k-block
constexpr int kWarps = 4;                                 // 16-row tiles per CTA
constexpr int kChunk = 2;  // k-blocks per staged x chunk = per loop round (two in flight)
constexpr int kChunkVecs = kChunk * kBlockVecs;
constexpr int kPitch = kChunkVecs + 4;  // uint4s per staged row (the pad: disjoint banks)
// Split-k: few tiles (n = 4096: 256) cannot keep enough weight loads in flight, so the k
// range is cut into up to kMaxSplits CTAs whose f32 partials the last one to finish adds in
// split order (deterministic). Aimed at kTargetTileSplits tile-splits per launch.
constexpr int kMaxSplits = 16;
constexpr int kTargetTileSplits = 2048;
constexpr int kMaxCounters = 1024;

constexpr size_t staged_bytes(int column_tiles) {
  return size_t(2) * column_tiles * 8 * kPitch * 16;  // double-buffered
}

int splits_for(int tiles, int blocks) {
  const int chunks = (blocks + kChunk - 1) / kChunk;
  int s = std::clamp(kTargetTileSplits / std::max(tiles, 1), 1, kMaxSplits);
  s = std::min(s, chunks);
  const int ctas = (tiles + kWarps - 1) / kWarps;
  return ctas > kMaxCounters ? 1 : s;
}

// The split-k partials: [kTargetTileSplits * 2 (rounding)] tiles of 16 rows x 64 batch rows.
constexpr size_t kPartialBytes = size_t(2) * kTargetTileSplits * 16 * 64 * 4;

// x chunk [c0, c0 + kChunkVecs) of rows 0 .. 8 * NB - 1 into xs (rows from M on and vectors
// past the row end are zeros), each k-block lane-interleaved: vector i of lane j at 4i + j,
// as raw bf16 (the mma order is applied as it is read).
template <int NB>
__device__ __forceinline__ void stage_x(uint4* xs, const uint4* xg, int M, int per_row, int c0) {
  for (int i = threadIdx.x; i < NB * 8 * kChunkVecs; i += kWarps * 32) {
    const int r = i / kChunkVecs, c = i % kChunkVecs;
    const bool valid = r < M && c0 + c < per_row;
    const int in_block = c % kBlockVecs;
    cp_async16(xs + r * kPitch + (c - in_block) + (in_block % 4) * 4 + in_block / 4,
               xg + (valid ? size_t(r) * per_row + c0 + c : 0), valid);
  }
  cp_async_commit();
}

// NB column tiles of 8 batch rows (M <= 8 * NB); rows from M on are zeros in shared memory
// and never stored. blockIdx.y is the split of k.
template <int NB, typename TOut>
__global__ void __launch_bounds__(kWarps * 32, NB == 2 ? 4 : 2)
    gemm_int4_mma_kernel(const bf16* __restrict__ x, const WeightGroup p, const int M,
                         float* __restrict__ partials, int* __restrict__ counters) {
  extern __shared__ uint4 xs[];  // [2][NB * 8][kPitch]
  __shared__ bool last_split;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, j = lane & 3;
  const int total_tiles = p.start[p.count];
  const int t = blockIdx.x * kWarps + warp;
  const bool active = t < total_tiles;
  // The weight of this warp's tile (static indices only, as in the GEMV).
  QuantWeightArgs a0 = p.w[0];
  void* out_v = p.out[0];
  int tile = t;
#pragma unroll
  for (int i = 1; i < kMaxGroupWeights; ++i) {
    if (!p.gate_up && i < p.count && t >= p.start[i]) {
      a0 = p.w[i];
      out_v = p.out[i];
      tile = t - p.start[i];
    }
  }
  const QuantWeightArgs a1 = p.gate_up ? p.w[1] : a0;
  const int row0 = p.gate_up ? tile * 8 : tile * kTileRows, row1 = p.gate_up ? row0 : row0 + 8;
  const int wrow0 = min(row0 + g, a0.n - 1), wrow1 = min(row1 + g, a1.n - 1);
  const int k = p.w[0].k, blocks = k / kBlock, per_row = k / 8;
  // This CTA's k-blocks [kb0, kb1): whole chunks.
  const int splits = gridDim.y, chunks = (blocks + kChunk - 1) / kChunk;
  const int per_split = (chunks + splits - 1) / splits;
  const int kb0 = min(int(blockIdx.y) * per_split * kChunk, blocks);
  const int kb1 = min(kb0 + per_split * kChunk, blocks);
  // Idle warps (past the last tile) stream no weights but stage x and meet the barriers.
  const int end = active ? kb1 : kb0;
  const auto half = [&](const QuantWeightArgs& w, int r) {
    return static_cast<const uint4*>(w.data) + size_t(r / 16) * blocks * 64 + (r % 16) / 8 * 32 +
           lane;
  };
  const uint4* wp0 = half(a0, row0);
  const uint4* wp1 = half(a1, row1);
  constexpr int stride = 64;
  // Weights two rounds ahead: round r's loads are issued before round r - 2 is computed.
  uint4 cur0[kChunk], cur1[kChunk], nxt0[kChunk], nxt1[kChunk];
  load_round(cur0, wp0, kb0, end, stride);
  load_round(cur1, wp1, kb0, end, stride);
  load_round(nxt0, wp0, kb0 + kChunk, end, stride);
  load_round(nxt1, wp1, kb0 + kChunk, end, stride);
  pdl_wait();
  pdl_launch_dependents();

  const int group_shift = a0.group_size > 0 ? __ffs(a0.group_size / kBlock) - 1 : 0;
  const float* sc0 = a0.scales + size_t(wrow0) * a0.num_groups;
  const float* sc1 = a1.scales + size_t(wrow1) * a1.num_groups;
  const uint8_t* zp0 = a0.zeros + size_t(wrow0) * a0.num_groups;
  const uint8_t* zp1 = a1.zeros + size_t(wrow1) * a1.num_groups;
  const uint4* xg = reinterpret_cast<const uint4*>(x);
  constexpr int kBuf = NB * 8 * kPitch;
  if (kb0 < kb1) stage_x<NB>(xs, xg, M, per_row, kb0 * kBlockVecs);
  float acc[NB][4] = {};
  for (int first = kb0, c = 0; first < kb1; first += kChunk, ++c) {
    uint4 far0[kChunk], far1[kChunk];
    load_round(far0, wp0, first + 2 * kChunk, end, stride);
    load_round(far1, wp1, first + 2 * kChunk, end, stride);
    if (first + kChunk < kb1) {
      stage_x<NB>(xs + ((c + 1) & 1) * kBuf, xg, M, per_row, (first + kChunk) * kBlockVecs);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float s0[kChunk], s1[kChunk], z0[kChunk], z1[kChunk];
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int grp = a0.group_size > 0 ? min(first + u, blocks - 1) >> group_shift : 0;
      s0[u] = active ? __ldg(sc0 + grp) : 0.f;
      s1[u] = active ? __ldg(sc1 + grp) : 0.f;
      z0[u] = a0.has_zeros && active ? float(__ldg(zp0 + grp)) : 8.f;
      z1[u] = a1.has_zeros && active ? float(__ldg(zp1 + grp)) : 8.f;
    }
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      if (first + u < end) {
        const uint4* xb = xs + (c & 1) * kBuf + u * kBlockVecs + j;
        const uint32_t r0[4] = {cur0[u].x, cur0[u].y, cur0[u].z, cur0[u].w};
        const uint32_t r1[4] = {cur1[u].x, cur1[u].y, cur1[u].z, cur1[u].w};
        const __nv_bfloat162 zz0 = __float2bfloat162_rn(128.f + z0[u]);
        const __nv_bfloat162 zz1 = __float2bfloat162_rn(128.f + z1[u]);
        float blk[NB][4] = {};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t p0[4], p1[4];
          int4_pairs<false>(r0[q], zz0, p0);
          int4_pairs<false>(r1[q], zz1, p1);
          const uint32_t f1[4] = {p0[0], p1[0], p0[1], p1[1]};
          const uint32_t f2[4] = {p0[2], p1[2], p0[3], p1[3]};
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            const uint4 xv = to_mma_order<QuantKind::kInt4>(xb[(nb * 8 + g) * kPitch + 4 * q]);
            mma_16816_bf16_reorderable(blk[nb], f1, xv.x, xv.y);
            mma_16816_bf16_reorderable(blk[nb], f2, xv.z, xv.w);
          }
        }
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          acc[nb][0] = fmaf(s0[u], blk[nb][0], acc[nb][0]);
          acc[nb][1] = fmaf(s0[u], blk[nb][1], acc[nb][1]);
          acc[nb][2] = fmaf(s1[u], blk[nb][2], acc[nb][2]);
          acc[nb][3] = fmaf(s1[u], blk[nb][3], acc[nb][3]);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      cur0[u] = nxt0[u], cur1[u] = nxt1[u];
      nxt0[u] = far0[u], nxt1[u] = far1[u];
    }
    __syncthreads();  // the buffer just read is the one staged next
  }
  if (splits > 1) {
    // Every split writes its partials; the last CTA of the column adds them in split order.
    float4* mine = reinterpret_cast<float4*>(partials) +
                   ((size_t(blockIdx.y) * gridDim.x * kWarps + t) * 32 + lane) * NB;
    if (active) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
        __stcg(mine + nb, make_float4(acc[nb][0], acc[nb][1], acc[nb][2], acc[nb][3]));
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last_split = atomicAdd(counters + blockIdx.x, 1) == splits - 1;
    __syncthreads();
    if (!last_split) return;
    __threadfence();
    if (threadIdx.x == 0) counters[blockIdx.x] = 0;  // ready for the next launch
    if (!active) return;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float4* part = reinterpret_cast<const float4*>(partials) +
                           ((size_t(s) * gridDim.x * kWarps + t) * 32 + lane) * NB;
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        const float4 v = __ldcg(part + nb);
        acc[nb][0] += v.x, acc[nb][1] += v.y, acc[nb][2] += v.z, acc[nb][3] += v.w;
      }
    }
  }
  if (!active) return;
  TOut* out = static_cast<TOut*>(out_v);
  // C of the lane in column tile nb: weight rows row0 + g (+ 8) x batch rows 8nb + 2j (+ 1).
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    if (p.gate_up) {
      // C rows g and g + 8 are gate and up of output row row0 + g: silu(gate) * up.
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int row = row0 + g, batch = nb * 8 + 2 * j + i;
        if (batch < M && row < a0.n) {
          out[size_t(batch) * a0.n + row] = from_float<TOut>(silu(acc[nb][i]) * acc[nb][2 + i]);
        }
      }
      continue;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = row0 + g + (i >= 2 ? 8 : 0), batch = nb * 8 + 2 * j + (i & 1);
      if (batch < M && row < a0.n) out[size_t(batch) * a0.n + row] = from_float<TOut>(acc[nb][i]);
    }
  }
}

template <int NB, typename TOut>
cudaError_t launch_nb(const void* x, int m, const WeightGroup& p, void* workspace,
                      cudaStream_t stream) {
  auto* kernel = gemm_int4_mma_kernel<NB, TOut>;
  static const cudaError_t attr = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(staged_bytes(NB)));
  if (attr != cudaSuccess) return attr;
  const int tiles = p.start[p.count];
  const int splits = workspace != nullptr ? splits_for(tiles, p.w[0].k / kBlock) : 1;
  auto* partials = static_cast<float*>(workspace);
  int* counters = reinterpret_cast<int*>(static_cast<uint8_t*>(workspace) + kPartialBytes);
  return launch_kernel(kernel, dim3((tiles + kWarps - 1) / kWarps, splits), dim3(kWarps * 32),
                       staged_bytes(NB), stream, static_cast<const bf16*>(x), p, m, partials,
                       counters);
}

template <typename TOut>
cudaError_t launch_group(const void* x, int m, const WeightGroup& p, void* workspace,
                         cudaStream_t stream) {
  if (m < 1 || m > kMaxInt4GemmRows) return cudaErrorInvalidValue;
  if (p.start[p.count] == 0) return cudaSuccess;
  if (m <= 16) return launch_nb<2, TOut>(x, m, p, workspace, stream);
  if (m <= 32) return launch_nb<4, TOut>(x, m, p, workspace, stream);
  return launch_nb<8, TOut>(x, m, p, workspace, stream);
}

bool gemm_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_INT4_GEMM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

bool same_layout(const QuantWeightArgs& a, const QuantWeightArgs& b) {
  return gemm_int4_mma_supported(a) && gemm_int4_mma_supported(b) && a.k == b.k &&
         a.group_size == b.group_size && a.has_zeros == b.has_zeros;
}

}  // namespace

bool gemm_int4_mma_supported(const QuantWeightArgs& w) {
  return gemm_enabled() && w.kind == QuantKind::kInt4 && w.tiled;  // tiled: the GEMV's layout
}

size_t gemm_int4_workspace_bytes() {
  return kPartialBytes + kMaxCounters * sizeof(int);
}

cudaError_t launch_gemm_int4_mma(const void* x, int m, const QuantWeightArgs& w, void* out,
                                 bool out_f32, void* workspace, cudaStream_t stream) {
  if (!gemm_int4_mma_supported(w)) return cudaErrorInvalidValue;
  const WeightGroup p = single_group(w, out, kTileRows);
  return out_f32 ? launch_group<float>(x, m, p, workspace, stream)
                 : launch_group<bf16>(x, m, p, workspace, stream);
}

bool gemm_int4_mma_multi_supported(const QuantWeightArgs* ws, int count) {
  return group_fits(ws, count, same_layout);
}

cudaError_t launch_gemm_int4_mma_multi(const void* x, int m, const QuantWeightArgs* ws,
                                       void* const* outs, int count, void* workspace,
                                       cudaStream_t stream) {
  if (!gemm_int4_mma_multi_supported(ws, count)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, stacked_group(ws, outs, count, kTileRows), workspace, stream);
}

bool gemm_int4_mma_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up) {
  return same_layout(gate, up) && gate.n == up.n;
}

cudaError_t launch_gemm_int4_mma_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                         const QuantWeightArgs& up, void* out, void* workspace,
                                         cudaStream_t stream) {
  if (!gemm_int4_mma_gate_up_supported(gate, up)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, gate_up_group(gate, up, out, kTileRows / 2), workspace, stream);
}

}  // namespace tessera::cuda
