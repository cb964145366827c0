#pragma once
// The paged attention kernel template (see attention.h for the work decomposition).
// Fragment layouts follow PTX's mma.m16n8k16: lane = 4 * g + t holds rows g and g + 8 and
// columns 2t, 2t + 1 of each 16x8 accumulator tile.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma_utils.cuh"

namespace tessera::cuda {

template <typename TKV, int D, bool kDecode>
struct AttentionConfig {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRows = kDecode ? kDecodeRows : kPrefillRows;
  static constexpr int kTile = kKvTile;
  static constexpr int kWarpTokens = kDecode ? kTile / kWarps : kTile;  // tokens per warp
  static constexpr int kStride = D + 8;  // 16-byte row pad: ldmatrix rows hit distinct banks
  // Decode streams K/V once: a deeper pipeline keeps more bytes in flight per SM.
  static constexpr int kStages = kDecode ? 3 : 2;
  static constexpr int kTableCap = 256;  // block ids staged in shared memory at a time
  static constexpr size_t kTableBytes = kTableCap * sizeof(int);
  static constexpr size_t kQBytes = size_t(kRows) * kStride * sizeof(TKV) + kTableBytes;
  static constexpr size_t kKvBytes = size_t(kStages) * 2 * kTile * kStride * sizeof(TKV);
  // The decode merge reuses the K/V buffers for the warps' f32 states.
  static constexpr size_t kMergeBytes = size_t(kWarps) * kRows * (D + 2) * sizeof(float);
  static constexpr size_t kSmemBytes = kQBytes + (kKvBytes > kMergeBytes ? kKvBytes : kMergeBytes);
};

// Eight 8-bit cache values (e4m3 when kQ == 1, int8 when kQ == 2) times their row's scale.
template <int kQ>
__device__ __forceinline__ void decode8_kv(uint2 raw, float scale, float (&v)[8]) {
  const uint32_t w[2] = {raw.x, raw.y};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t b = (w[i / 4] >> (8 * (i % 4))) & 0xFF;
    if constexpr (kQ == 1) {
      const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
      v[i] = __half2float(*reinterpret_cast<const __half*>(&h)) * scale;
    } else {
      v[i] = float(static_cast<int8_t>(b)) * scale;
    }
  }
}

// kQ: 0 = a 16-bit cache of TKV (tiles arrive by cp.async); 1 / 2 = an e4m3 / int8 cache
// whose tiles are loaded, scaled and stored to shared memory as TKV by the threads (the
// loads then wait before the store, so less latency hides behind compute, but the cache
// reads half the bytes).
template <typename TKV, int D, bool kDecode, int kQ = 0>
__global__ void __launch_bounds__(128) paged_attention_kernel(const PagedAttentionArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  using C = AttentionConfig<TKV, D, kDecode>;
  constexpr float kLog2e = 1.4426950408889634f;
  const AttentionWorkItem item = a.items[blockIdx.x];
  const int kvh = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int group = a.num_heads / a.num_kv_heads;
  const int q0 = a.query_start[item.seq];
  const int qlen = a.query_start[item.seq + 1] - q0;
  const int ctx = a.context_len[item.seq];
  const int* table = a.block_tables + a.block_table_start[item.seq];
  // Tables kept on the device across steps are rows of a wider array: their length is the
  // context's (begin_step checks that each table covers it).
  const int table_len = (ctx + a.block_size - 1) / a.block_size;
  const int num_rows = qlen * group;
  const float scale_log2 = a.scale * kLog2e;
  const int num_tiles =
      item.kv_end > item.kv_start ? (item.kv_end - item.kv_start + C::kTile - 1) / C::kTile : 0;
  if (num_tiles == 0 && item.partial >= 0) {
    // An empty split (graph-stable plans pad short contexts with them): the merge gives it
    // weight 0 from its log-sum-exp and never reads its output.
    for (int r = tid; r < C::kRows; r += C::kThreads) {
      a.partial_lse[(size_t(item.partial) * a.num_kv_heads + kvh) * C::kRows + r] = -INFINITY;
    }
    return;
  }

  extern __shared__ __align__(16) uint8_t smem_raw[];
  int* s_table = reinterpret_cast<int*>(smem_raw);
  TKV* s_q = reinterpret_cast<TKV*>(smem_raw + C::kTableBytes);
  TKV* s_kv = reinterpret_cast<TKV*>(smem_raw + C::kQBytes);
  auto s_k = [&](int stage) { return s_kv + (stage * 2) * C::kTile * C::kStride; };
  auto s_v = [&](int stage) { return s_kv + (stage * 2 + 1) * C::kTile * C::kStride; };

  // Q tile: packed rows -> (token, head); rows past the query are zero.
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(a.q);
  for (int c = tid; c < C::kRows * (D / 8); c += C::kThreads) {
    const int r = c / (D / 8), col = (c % (D / 8)) * 8;
    const int row = item.row_start + r;
    float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (row < num_rows) {
      const int head = kvh * group + row % group;
      const uint4 raw = *reinterpret_cast<const uint4*>(
          q + (size_t(q0 + row / group) * a.num_heads + head) * D + col);
      unpack8<__nv_bfloat16>(raw, v);
    }
    *reinterpret_cast<uint4*>(s_q + r * C::kStride + col) = pack8<TKV>(v);
  }

  const TKV* k_pool = static_cast<const TKV*>(a.k_pool);
  const TKV* v_pool = static_cast<const TKV*>(a.v_pool);
  const size_t token_stride = size_t(a.num_kv_heads) * D;
  // Block ids come from a shared-memory window of the table, refilled every kTableCap
  // pages, so no cp.async waits on a dependent global load. Called by all threads alike.
  int table_base = -C::kTableCap;
  auto load_tile = [&](int stage, int tile_start) {
    const int first_page = tile_start / a.block_size;
    const int last_page = (tile_start + C::kTile - 1) / a.block_size;
    if (last_page >= table_base + C::kTableCap) {
      table_base = first_page;
      for (int i = tid; i < C::kTableCap; i += C::kThreads) {
        const int p = table_base + i;
        s_table[i] = p < table_len ? table[p] : 0;
      }
      __syncthreads();
    }
    TKV* sk = s_k(stage);
    TKV* sv = s_v(stage);
    for (int c = tid; c < C::kTile * (D / 8); c += C::kThreads) {
      const int r = c / (D / 8), col = (c % (D / 8)) * 8;
      const int pos = tile_start + r;
      const int bi = pos / a.block_size;
      const bool valid = pos < item.kv_end && bi < table_len;
      const int block = valid ? s_table[bi - table_base] : 0;
      const size_t off =
          (size_t(block) * a.block_size + (valid ? pos % a.block_size : 0)) * token_stride +
          size_t(kvh) * D + col;
      if constexpr (kQ == 0) {
        cp_async16(sk + r * C::kStride + col, k_pool + off, valid);
        cp_async16(sv + r * C::kStride + col, v_pool + off, valid);
      } else {
        float kv8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, vv8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (valid) {
          // off counts elements, and an element is one byte here; the scale row is the
          // element row (slot, head) = off / D.
          const auto* kb = static_cast<const uint8_t*>(a.k_pool);
          const auto* vb = static_cast<const uint8_t*>(a.v_pool);
          decode8_kv<kQ>(*reinterpret_cast<const uint2*>(kb + off), a.k_scales[off / D], kv8);
          decode8_kv<kQ>(*reinterpret_cast<const uint2*>(vb + off), a.v_scales[off / D], vv8);
        }
        *reinterpret_cast<uint4*>(sk + r * C::kStride + col) = pack8<TKV>(kv8);
        *reinterpret_cast<uint4*>(sv + r * C::kStride + col) = pack8<TKV>(vv8);
      }
    }
  };

#pragma unroll
  for (int st = 0; st < C::kStages - 1; ++st) {
    if (st < num_tiles) load_tile(st, item.kv_start + st * C::kTile);
    cp_async_commit();
  }
  __syncthreads();

  const int row_base = kDecode ? 0 : warp * 16;              // this warp's 16 rows in the tile
  const int tok_base = kDecode ? warp * C::kWarpTokens : 0;  // its tokens within a K/V tile
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    ldmatrix_x4(qf[ks], s_q + (row_base + (lane & 15)) * C::kStride + ks * 16 + (lane >> 4) * 8);
  }

  // Per-thread rows g and g + 8: their query positions decide the causal mask.
  int qpos[2];
  bool row_ok[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = item.row_start + row_base + g + 8 * h;
    row_ok[h] = row < num_rows;
    qpos[h] = ctx - qlen + (row_ok[h] ? row / group : 0);
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

  // Interior tiles (fully visible to every row of this CTA) skip the mask arithmetic.
  const int cta_min_qpos = ctx - qlen + item.row_start / group;
  for (int tile = 0; tile < num_tiles; ++tile) {
    const int tile_start = item.kv_start + tile * C::kTile;
    const int ahead = tile + C::kStages - 1;
    if (ahead < num_tiles) load_tile(ahead % C::kStages, item.kv_start + ahead * C::kTile);
    cp_async_commit();
    cp_async_wait<C::kStages - 1>();
    __syncthreads();
    const TKV* sk = s_k(tile % C::kStages);
    const TKV* sv = s_v(tile % C::kStages);
    const bool interior = a.sliding_window == 0 && tile_start + C::kTile <= item.kv_end &&
                          tile_start + C::kTile - 1 <= cta_min_qpos;

    constexpr int kNT = C::kWarpTokens / 8;  // 8-token accumulator tiles per warp
    float s[kNT][4];
#pragma unroll
    for (int j = 0; j < kNT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
    // Fragments for the next k-step are loaded before this step's MMAs (the asm is
    // volatile, so the compiler would not hoist the shared-memory loads itself).
    const TKV* k_lane =
        sk + (tok_base + (lane & 7) + (lane >> 4) * 8) * C::kStride + ((lane >> 3) & 1) * 8;
    uint32_t kb[2][kNT / 2][4];
#pragma unroll
    for (int jp = 0; jp < kNT / 2; ++jp) ldmatrix_x4(kb[0][jp], k_lane + jp * 16 * C::kStride);
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      if (ks + 1 < D / 16) {
#pragma unroll
        for (int jp = 0; jp < kNT / 2; ++jp) {
          ldmatrix_x4(kb[(ks + 1) & 1][jp], k_lane + jp * 16 * C::kStride + (ks + 1) * 16);
        }
      }
#pragma unroll
      for (int jp = 0; jp < kNT / 2; ++jp) {
        mma_16816<TKV>(s[2 * jp], qf[ks], kb[ks & 1][jp][0], kb[ks & 1][jp][1]);
        mma_16816<TKV>(s[2 * jp + 1], qf[ks], kb[ks & 1][jp][2], kb[ks & 1][jp][3]);
      }
    }

    // Mask, then the online-softmax update (scores in log2 units).
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e >> 1;
        if (interior) {
          s[j][e] *= scale_log2;
        } else {
          const int pos = tile_start + tok_base + j * 8 + 2 * t4 + (e & 1);
          bool ok = row_ok[h] && pos < item.kv_end && pos <= qpos[h];
          if (a.sliding_window > 0) ok = ok && pos > qpos[h] - a.sliding_window;
          s[j][e] = ok ? s[j][e] * scale_log2 : -INFINITY;
        }
        tile_max[h] = fmaxf(tile_max[h], s[j][e]);
      }
    }
    float rescale[2], ref[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      const float m_new = fmaxf(m[h], tile_max[h]);
      ref[h] = m_new == -INFINITY ? 0.f : m_new;  // all masked so far: avoid inf - inf
      rescale[h] = fast_exp2(m[h] - ref[h]);
      m[h] = m_new;
      l[h] *= rescale[h];
    }
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= rescale[0], o[i][1] *= rescale[0];
      o[i][2] *= rescale[1], o[i][3] *= rescale[1];
    }
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = fast_exp2(s[j][e] - ref[e >> 1]);
        l[e >> 1] += s[j][e];
      }
    }
    // O += P V, P re-packed from the accumulators into A fragments.
#pragma unroll
    for (int kt = 0; kt < kNT / 2; ++kt) {
      uint32_t p[4];
      p[0] = pack2<TKV>(s[2 * kt][0], s[2 * kt][1]);
      p[1] = pack2<TKV>(s[2 * kt][2], s[2 * kt][3]);
      p[2] = pack2<TKV>(s[2 * kt + 1][0], s[2 * kt + 1][1]);
      p[3] = pack2<TKV>(s[2 * kt + 1][2], s[2 * kt + 1][3]);
      const TKV* v_lane = sv +
                          (tok_base + kt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * C::kStride +
                          (lane >> 4) * 8;
      uint32_t vb[2][4];
      ldmatrix_x4_trans(vb[0], v_lane);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        if (dp + 1 < D / 16) ldmatrix_x4_trans(vb[(dp + 1) & 1], v_lane + (dp + 1) * 16);
        mma_16816<TKV>(o[2 * dp], p, vb[dp & 1][0], vb[dp & 1][1]);
        mma_16816<TKV>(o[2 * dp + 1], p, vb[dp & 1][2], vb[dp & 1][3]);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }
  cp_async_wait<0>();

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }

  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.out);
  // Writes one finished row value pair (cols d, d + 1) for local row r.
  auto emit = [&](int r, int d, float v0, float v1, float lse2) {
    const int row = item.row_start + r;
    if (row >= num_rows) return;
    if (item.partial < 0) {
      const int head = kvh * group + row % group;
      __nv_bfloat162 pair = __floats2bfloat162_rn(v0, v1);
      *reinterpret_cast<__nv_bfloat162*>(out + (size_t(q0 + row / group) * a.num_heads + head) * D +
                                         d) = pair;
    } else {
      const size_t base = (size_t(item.partial) * a.num_kv_heads + kvh) * C::kRows + r;
      *reinterpret_cast<float2*>(a.partial_o + base * D + d) = make_float2(v0, v1);
      if (d == 0) a.partial_lse[base] = lse2;
    }
  };

  if constexpr (!kDecode) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
      const float lse2 = l[h] > 0.f ? m[h] + log2f(l[h]) : -INFINITY;
      const int r = row_base + g + 8 * h;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        emit(r, i * 8 + 2 * t4, o[i][2 * h] * inv, o[i][2 * h + 1] * inv, lse2);
      }
    }
  } else {
    // Merge the 4 warps' states (each saw a quarter of every tile) through shared memory.
    float* s_o = reinterpret_cast<float*>(smem_raw + C::kQBytes);  // [warp][16][D]
    float* s_m = s_o + C::kWarps * 16 * D;                         // [warp][16]
    float* s_l = s_m + C::kWarps * 16;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = g + 8 * h;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        *reinterpret_cast<float2*>(s_o + (warp * 16 + r) * D + i * 8 + 2 * t4) =
            make_float2(o[i][2 * h], o[i][2 * h + 1]);
      }
      if (t4 == 0) {
        s_m[warp * 16 + r] = m[h];
        s_l[warp * 16 + r] = l[h];
      }
    }
    __syncthreads();
    constexpr int kPerThread = 16 * D / C::kThreads;  // contiguous values per thread
    const int r = tid / (D / kPerThread);
    const int d0 = (tid % (D / kPerThread)) * kPerThread;
    float m_all = -INFINITY;
#pragma unroll
    for (int w = 0; w < C::kWarps; ++w) m_all = fmaxf(m_all, s_m[w * 16 + r]);
    const float ref = m_all == -INFINITY ? 0.f : m_all;
    float wgt[C::kWarps], l_all = 0.f;
#pragma unroll
    for (int w = 0; w < C::kWarps; ++w) {
      wgt[w] = exp2f(s_m[w * 16 + r] - ref);
      l_all += wgt[w] * s_l[w * 16 + r];
    }
    const float inv = l_all > 0.f ? 1.f / l_all : 0.f;
    const float lse2 = l_all > 0.f ? ref + log2f(l_all) : -INFINITY;
#pragma unroll
    for (int d = d0; d < d0 + kPerThread; d += 2) {
      float v0 = 0.f, v1 = 0.f;
#pragma unroll
      for (int w = 0; w < C::kWarps; ++w) {
        v0 += wgt[w] * s_o[(w * 16 + r) * D + d];
        v1 += wgt[w] * s_o[(w * 16 + r) * D + d + 1];
      }
      emit(r, d, v0 * inv, v1 * inv, lse2);
    }
  }
}

template <typename TKV, int D, bool kDecode, int kQ = 0>
cudaError_t launch_attention_instance(const PagedAttentionArgs& a, cudaStream_t stream) {
  using C = AttentionConfig<TKV, D, kDecode>;
  auto kernel = paged_attention_kernel<TKV, D, kDecode, kQ>;
  static bool configured = false;  // per instantiation; the attribute is per-function
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(C::kSmemBytes));
    if (e != cudaSuccess) return e;
    configured = true;
  }
  if (a.num_items == 0) return cudaSuccess;
  dim3 grid(a.num_items, a.num_kv_heads);
  return launch_kernel(kernel, grid, dim3(C::kThreads), C::kSmemBytes, stream, a);
}

}  // namespace tessera::cuda
