#include <cuda_bf16.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;  // warps per CTA, each owning RB consecutive output rows

// Output rows per warp for a batch of m rows. Per 16-byte weight load a lane also loads and
// unpacks m 16-byte pieces of x; from m = 2 on that, not HBM, limits the kernel, so a warp
// streams RB weight rows that share each x load.
constexpr int rows_per_warp(int m) {
  return m >= 4 ? 4 : m >= 2 ? 2 : 1;
}
// 16-byte loads in flight per lane and weight row: about 8 to 16 per lane in all, as far as
// the registers allow.
constexpr int unroll_for(int streams) {
  return streams >= 8 ? 2 : streams >= 4 ? 4 : 8;
}

// The kernel's copy of a GemvGroup, in warp tasks of RB rows: weight i owns tasks
// [start[i], start[i + 1]), so a task never straddles two weights.
struct GroupArgs {
  const uint4* w[kMaxGemvGroup];
  void* out[kMaxGemvGroup];
  int n[kMaxGemvGroup];
  int start[kMaxGemvGroup + 1];
  int count;
  int total;  // start[count], kept apart so no dynamic index reads the params
};

// One round of U chunks per lane from chunk `base` (this lane's): every weight load is issued
// before the first FMA so the loads overlap. Full: all chunks in range, no predicates (the
// last, partial round of a row takes Full = false and keeps its loads in flight too).
template <int M, int R, int U, bool Full>
__device__ __forceinline__ void stream_round(const uint4* const (&w)[R],
                                             const uint4* __restrict__ x, int chunks, int base,
                                             float (&acc)[R][M]) {
  uint4 wv[R][U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int c = base + 32 * u;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      wv[r][u] = (Full || c < chunks) ? __ldcs(w[r] + c) : make_uint4(0u, 0u, 0u, 0u);
    }
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int c = base + 32 * u;
    if (Full || c < chunks) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        unpack8<bf16>(__ldg(x + size_t(m) * chunks + c), xf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float wf[8];
          unpack8<bf16>(wv[r][u], wf);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[r][m] = fmaf(wf[j], xf[j], acc[r][m]);
        }
      }
    }
  }
}

// acc[r][m] = this lane's share of dot(weight row w[r], x row m) over k = 8 * chunks; the
// caller sums it over the warp. The R rows share every x load.
template <int M, int R>
__device__ __forceinline__ void stream_rows(const uint4* const (&w)[R], const uint4* __restrict__ x,
                                            int chunks, float (&acc)[R][M]) {
  constexpr int U = unroll_for(R);
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  }
  int base = threadIdx.x & 31;
  for (; base + 32 * (U - 1) < chunks; base += 32 * U) {
    stream_round<M, R, U, true>(w, x, chunks, base, acc);
  }
  if (base < chunks) stream_round<M, R, U, false>(w, x, chunks, base, acc);
}

// Pointers to rows first .. first + RB - 1 of a [n, k] weight; rows past the end repeat the
// last row (read, never stored) so the loop needs no per-row predicate.
template <int RB>
__device__ __forceinline__ void row_block(const uint4* w, int first, int n, int chunks,
                                          const uint4* (&rows)[RB]) {
#pragma unroll
  for (int r = 0; r < RB; ++r) rows[r] = w + size_t(min(first + r, n - 1)) * chunks;
}

// x: [M, k]; each warp computes RB consecutive output rows of one weight of the group.
template <int M, int RB, typename TOut>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_group_kernel(const uint4* __restrict__ x, const GroupArgs g, int chunks) {
  pdl_wait();
  pdl_launch_dependents();
  const int task = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (task >= g.total) return;
  // Pick the weight with static indices only (a dynamic index copies the params to local
  // memory). Empty weights are passed over: the last start <= task wins.
  const uint4* w = g.w[0];
  void* out = g.out[0];
  int n = g.n[0], first_task = g.start[0];
#pragma unroll
  for (int i = 1; i < kMaxGemvGroup; ++i) {
    if (i < g.count && task >= g.start[i]) {
      w = g.w[i];
      out = g.out[i];
      n = g.n[i];
      first_task = g.start[i];
    }
  }
  const int row0 = (task - first_task) * RB;
  const uint4* rows[RB];
  row_block<RB>(w, row0, n, chunks, rows);
  float acc[RB][M];
  stream_rows<M, RB>(rows, x, chunks, acc);
  TOut* o = static_cast<TOut*>(out);
#pragma unroll
  for (int r = 0; r < RB; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = warp_sum(acc[r][m]);
      if ((threadIdx.x & 31) == 0 && row0 + r < n) {
        o[size_t(m) * n + row0 + r] = from_float<TOut>(v);
      }
    }
  }
}

// out[m, j] = silu(x_m . gate_j) * (x_m . up_j) for RB consecutive j per warp; the gate and
// up rows stream with the same x loads.
template <int M, int RB>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_gate_up_silu_kernel(const uint4* __restrict__ x, const uint4* __restrict__ gate,
                             const uint4* __restrict__ up, int n, int chunks,
                             bf16* __restrict__ out) {
  pdl_wait();
  pdl_launch_dependents();
  const int row0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * RB;
  if (row0 >= n) return;
  const uint4* g_rows[RB];
  const uint4* u_rows[RB];
  row_block<RB>(gate, row0, n, chunks, g_rows);
  row_block<RB>(up, row0, n, chunks, u_rows);
  const uint4* rows[2 * RB];
#pragma unroll
  for (int r = 0; r < RB; ++r) rows[r] = g_rows[r], rows[RB + r] = u_rows[r];
  float acc[2 * RB][M];
  stream_rows<M, 2 * RB>(rows, x, chunks, acc);
#pragma unroll
  for (int r = 0; r < RB; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float g = warp_sum(acc[r][m]), u = warp_sum(acc[RB + r][m]);
      if ((threadIdx.x & 31) == 0 && row0 + r < n) {
        out[size_t(m) * n + row0 + r] = __float2bfloat16(silu(g) * u);
      }
    }
  }
}

// Calls launch(std::integral_constant<int, m>) for m in [M, kMaxGemvRows]: the one place
// where the runtime row count becomes a template argument.
template <int M = 1, typename F>
cudaError_t with_rows(int m, F&& launch) {
  if constexpr (M > kMaxGemvRows) {
    return cudaErrorInvalidValue;
  } else {
    if (m != M) return with_rows<M + 1>(m, launch);
    return launch(std::integral_constant<int, M>{});
  }
}

template <typename TOut>
cudaError_t launch_group_typed(const void* x, int m, const GemvGroup& g, int k,
                               cudaStream_t stream) {
  for (int i = 0; i < g.count; ++i) {
    if (g.n[i] < 0) return cudaErrorInvalidValue;
  }
  auto xv = static_cast<const uint4*>(x);
  return with_rows(m, [&](auto rows) {
    constexpr int M = decltype(rows)::value, RB = rows_per_warp(M);
    GroupArgs a{};
    a.count = g.count;
    for (int i = 0; i < g.count; ++i) {
      a.w[i] = static_cast<const uint4*>(g.w[i]);
      a.out[i] = g.out[i];
      a.n[i] = g.n[i];
      a.start[i + 1] = a.start[i] + (g.n[i] + RB - 1) / RB;
    }
    a.total = a.start[g.count];
    if (a.total == 0) return cudaSuccess;
    const dim3 grid((a.total + kWarps - 1) / kWarps), block(kWarps * 32);
    return launch_kernel(gemv_group_kernel<M, RB, TOut>, grid, block, 0, stream, xv, a, k / 8);
  });
}

bool bad_shape(int m, int k) {
  return k % 8 != 0 || k <= 0 || m < 1 || m > kMaxGemvRows;
}

}  // namespace

cudaError_t launch_gemv(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                        cudaStream_t stream) {
  if (bad_shape(m, k) || n < 0) return cudaErrorInvalidValue;
  GemvGroup g;
  g.w[0] = w;
  g.out[0] = out;
  g.n[0] = n;
  g.count = 1;
  return out_f32 ? launch_group_typed<float>(x, m, g, k, stream)
                 : launch_group_typed<bf16>(x, m, g, k, stream);
}

cudaError_t launch_gemv_group(const void* x, int m, const GemvGroup& g, int k,
                              cudaStream_t stream) {
  if (bad_shape(m, k) || g.count < 1 || g.count > kMaxGemvGroup) return cudaErrorInvalidValue;
  return launch_group_typed<bf16>(x, m, g, k, stream);
}

cudaError_t launch_gemv_gate_up_silu(const void* x, int m, const void* gate, const void* up, int n,
                                     int k, void* out, cudaStream_t stream) {
  if (bad_shape(m, k) || n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  auto xv = static_cast<const uint4*>(x);
  auto g = static_cast<const uint4*>(gate);
  auto u = static_cast<const uint4*>(up);
  auto o = static_cast<bf16*>(out);
  return with_rows(m, [&](auto rows) {
    // One row pair per warp at every batch: gate and up already share each x load, and two
    // or four pairs per warp measured no faster at m = 4 and slower at m = 8 (register
    // pressure), unlike the plain rows.
    constexpr int M = decltype(rows)::value, RB = 1;
    const int tasks = (n + RB - 1) / RB;
    const dim3 grid((tasks + kWarps - 1) / kWarps), block(kWarps * 32);
    return launch_kernel(gemv_gate_up_silu_kernel<M, RB>, grid, block, 0, stream, xv, g, u, n,
                         k / 8, o);
  });
}

int gemv_row_cutoff(int measured, int64_t weight_rows, int64_t weight_cols) {
  static const bool small_rule = [] {
    const char* v = std::getenv("TESSERA_SMALL_GEMV");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return small_rule && weight_rows * weight_cols <= kSmallGemvElements ? kMaxGemvRows : measured;
}

}  // namespace tessera::cuda
