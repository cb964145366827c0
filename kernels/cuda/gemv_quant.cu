// Weight-streaming GEMV over quantized weights (see quant.h). Each warp owns one output row
// and streams its bytes once with 16-byte loads, two in flight per lane before any math;
// every 16 bytes (16 fp8 / int8 values, or 32 int4 values) are decoded in registers and
// multiplied with the matching x values of each batch row. Group scales are applied once
// per 16-byte unit when a unit never straddles two groups (group_size a multiple of the
// unit, no act order); otherwise each value looks its group up (the generic path).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <type_traits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant.h"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;
constexpr int kUnroll = 2;

template <QuantKind K>
constexpr int values_per_unit() {
  return K == QuantKind::kInt4 ? 32 : 16;
}

// Value i of a 16-byte unit as a float: int4 nibbles low first, int8 signed bytes, fp8 e4m3.
// The integer kinds use the 2^23 trick: 0x4B000000 | b is the float 8388608 + b exactly.
template <QuantKind K>
__device__ __forceinline__ void decode_unit(const uint4& raw, float (&v)[values_per_unit<K>()]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (K == QuantKind::kInt4) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      v[i] = __int_as_float(0x4B000000 | ((w[i / 8] >> (4 * (i % 8))) & 0xF)) - 8388608.f;
    }
  } else if constexpr (K == QuantKind::kInt8) {
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      // b ^ 0x80 maps the signed byte -128..127 to 0..255 in order.
      v[i] = __int_as_float(0x4B000000 | (((w[i / 4] >> (8 * (i % 4))) & 0xFF) ^ 0x80)) - 8388736.f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const __nv_fp8x2_storage_t pair =
          static_cast<__nv_fp8x2_storage_t>((w[i / 2] >> (16 * (i % 2))) & 0xFFFF);
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
}

// Scale and zero point of (row, group) for the integer kinds.
__device__ __forceinline__ void group_params(const QuantWeightArgs& a, int row, int g, float& s,
                                             float& z) {
  s = __ldg(a.scales + size_t(row) * a.num_groups + g);
  z = a.has_zeros ? float(__ldg(a.zeros + size_t(row) * a.num_groups + g))
                  : (a.kind == QuantKind::kInt4 ? 8.f : 0.f);
}

template <int M, QuantKind K, bool kGeneric>
__device__ __forceinline__ void unit_dot(const QuantWeightArgs& a, int row, const uint4& raw,
                                         const bf16* __restrict__ x, int unit, float (&acc)[M]) {
  constexpr int V = values_per_unit<K>();
  float v[V];
  decode_unit<K>(raw, v);
  const int c0 = unit * V;
  if constexpr (K != QuantKind::kFp8) {
    if constexpr (kGeneric) {
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const int c = c0 + i;
        const int g = a.g_idx ? __ldg(a.g_idx + c) : (a.group_size > 0 ? c / a.group_size : 0);
        float s, z;
        group_params(a, row, g, s, z);
        v[i] = (v[i] - z) * s;
      }
    } else {
      float s, z;
      group_params(a, row, a.group_size > 0 ? c0 / a.group_size : 0, s, z);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = (v[i] - z) * s;
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const uint4* xr = reinterpret_cast<const uint4*>(x + size_t(m) * a.k + c0);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < V / 8; ++j) {
      float xf[8];
      unpack8<bf16>(__ldg(xr + j), xf);
#pragma unroll
      for (int i = 0; i < 8; ++i) s = fmaf(v[8 * j + i], xf[i], s);
    }
    acc[m] += s;
  }
}

template <int M, QuantKind K, bool kGeneric, typename TOut>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_quant_kernel(const bf16* __restrict__ x, const QuantWeightArgs a, TOut* __restrict__ out) {
  pdl_wait();
  pdl_launch_dependents();
  const int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (row >= a.n) return;
  constexpr int V = values_per_unit<K>();
  const int units = a.k / V;
  const uint4* w = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(a.data) +
                                                  size_t(row) * units * 16);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  for (int base = threadIdx.x & 31; base < units; base += 32 * kUnroll) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int unit = base + 32 * u;
      raw[u] = unit < units ? __ldcs(w + unit) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int unit = base + 32 * u;
      if (unit < units) unit_dot<M, K, kGeneric>(a, row, raw[u], x, unit, acc);
    }
  }
  const float row_scale = K == QuantKind::kFp8 ? __ldg(a.scales + (a.per_channel ? row : 0)) : 1.f;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float s = warp_sum(acc[m]);
    if ((threadIdx.x & 31) == 0) out[size_t(m) * a.n + row] = from_float<TOut>(s * row_scale);
  }
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

template <QuantKind K, bool kGeneric, typename TOut>
cudaError_t launch_typed(const void* x, int m, const QuantWeightArgs& a, void* out,
                         cudaStream_t stream) {
  return with_rows(m, [&](auto rows) {
    constexpr int M = decltype(rows)::value;
    const dim3 grid((a.n + kWarps - 1) / kWarps), block(kWarps * 32);
    return launch_kernel(gemv_quant_kernel<M, K, kGeneric, TOut>, grid, block, 0, stream,
                         static_cast<const bf16*>(x), a, static_cast<TOut*>(out));
  });
}

template <typename TOut>
cudaError_t launch_kind(const void* x, int m, const QuantWeightArgs& a, void* out,
                        cudaStream_t stream) {
  const int v = a.kind == QuantKind::kInt4 ? 32 : 16;
  const bool generic = a.g_idx != nullptr || (a.group_size > 0 && a.group_size % v != 0);
  switch (a.kind) {
    case QuantKind::kFp8:
      return launch_typed<QuantKind::kFp8, false, TOut>(x, m, a, out, stream);
    case QuantKind::kInt8:
      return generic ? launch_typed<QuantKind::kInt8, true, TOut>(x, m, a, out, stream)
                     : launch_typed<QuantKind::kInt8, false, TOut>(x, m, a, out, stream);
    case QuantKind::kInt4:
      return generic ? launch_typed<QuantKind::kInt4, true, TOut>(x, m, a, out, stream)
                     : launch_typed<QuantKind::kInt4, false, TOut>(x, m, a, out, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

bool gemv_quant_supported(const QuantWeightArgs& w) {
  if (w.kind == QuantKind::kGguf) return w.n >= 0 && gguf_blocks_supported(w.gguf_type, w.k);
  const int v = w.kind == QuantKind::kInt4 ? 32 : 16;
  return w.k > 0 && w.k % v == 0 && w.n >= 0 &&
         (w.kind == QuantKind::kFp8 || w.kind == QuantKind::kInt8 || w.kind == QuantKind::kInt4);
}

cudaError_t launch_gemv_quant(const void* x, int m, const QuantWeightArgs& w, void* out,
                              bool out_f32, cudaStream_t stream) {
  if (!gemv_quant_supported(w) || m < 1 || m > kMaxQuantGemvRows) return cudaErrorInvalidValue;
  if (w.n == 0) return cudaSuccess;
  if (w.kind == QuantKind::kGguf) return launch_gguf_gemv(x, m, w, out, out_f32, stream);
  if (gemv_quant_mma_supported(w)) {
    return launch_gemv_quant_mma(x, m, w, out, out_f32, stream);
  }
  return out_f32 ? launch_kind<float>(x, m, w, out, stream)
                 : launch_kind<bf16>(x, m, w, out, stream);
}

}  // namespace tessera::cuda
