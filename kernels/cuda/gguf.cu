// GGUF weights kept as blocks on the GPU: a GEMV for decode-sized batches, a dequantizer to
// bf16 for larger ones (then cuBLASLt, as for int8 / int4), and the embedding lookup. Each
// thread decodes 32-value units (gguf_blocks.cuh) on the CUDA cores; the GEMV gives each row
// a group of threads that is a power of two no larger than its unit count (a 576-value row
// has 18 units: 16 threads), so narrow rows do not leave most of a warp idle.
#include <cuda_bf16.h>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/gguf_blocks.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant.h"
#include "kernels/cuda/weight_group.h"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;

// Adds x[r] . (the row's unit u) to acc[r] for r < m.
template <DType T>
__device__ __forceinline__ void dot_unit(const bf16* __restrict__ x, int m, int k,
                                         const uint8_t* row, int u,
                                         float (&acc)[kMaxQuantGemvRows]) {
  float v[32];
  gguf::decode_unit<T>(row, u, v);
#pragma unroll
  for (int r = 0; r < kMaxQuantGemvRows; ++r) {
    if (r < m) {
      const uint4* xp = reinterpret_cast<const uint4*>(x + size_t(r) * k + size_t(u) * 32);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float f[8];
        unpack8<bf16>(__ldg(xp + i), f);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[r] = fmaf(v[8 * i + e], f[e], acc[r]);
      }
    }
  }
}

// The group's lanes are consecutive and the group divides 32: sums within it.
__device__ __forceinline__ void group_sum(float (&acc)[kMaxQuantGemvRows], int group) {
#pragma unroll
  for (int r = 0; r < kMaxQuantGemvRows; ++r) {
    for (int o = group / 2; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
  }
}

// out[r, row] = x[r] . w[row] for r < m (m <= kMaxQuantGemvRows); `group` threads per row.
template <DType T, typename TOut, bool kGateUp>
__global__ void __launch_bounds__(kThreads)
    gguf_gemv_kernel(const bf16* __restrict__ x, int m, const WeightGroup p, int group) {
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x * (kThreads / group) + threadIdx.x / group;
  const int sub = threadIdx.x % group;
  // This row's weight (static indices only: a dynamic one copies the parameters to local
  // memory).
  QuantWeightArgs w = p.w[0];
  void* out_v = p.out[0];
  int row = t;
#pragma unroll
  for (int i = 1; i < kMaxGroupWeights; ++i) {
    if (!kGateUp && i < p.count && t >= p.start[i]) {
      w = p.w[i];
      out_v = p.out[i];
      row = t - p.start[i];
    }
  }
  const bool active = t < p.start[p.count];
  const int k = w.k, units = k / 32;
  const size_t row_bytes = gguf::dtype_row_bytes_device<T>(k);
  float acc[kMaxQuantGemvRows] = {}, acc_up[kMaxQuantGemvRows] = {};
  if (active) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + size_t(row) * row_bytes;
    const uint8_t* ur =
        kGateUp ? static_cast<const uint8_t*>(p.w[1].data) + size_t(row) * row_bytes : nullptr;
    for (int u = sub; u < units; u += group) {
      dot_unit<T>(x, m, k, wr, u, acc);
      if constexpr (kGateUp) dot_unit<T>(x, m, k, ur, u, acc_up);
    }
  }
  group_sum(acc, group);
  if constexpr (kGateUp) group_sum(acc_up, group);
  if (sub != 0 || !active) return;
  TOut* out = static_cast<TOut*>(out_v);
  for (int r = 0; r < m; ++r) {
    const float v = kGateUp ? silu(acc[r]) * acc_up[r] : acc[r];
    out[size_t(r) * w.n + row] = from_float<TOut>(v);
  }
}

// One thread per 32-value unit: out [n, k] bf16.
template <DType T>
__global__ void gguf_dequant_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int n, int k,
                                    bf16* __restrict__ out) {
  pdl_wait();
  pdl_launch_dependents();
  const int units = k / 32;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(n) * units) return;
  const int row = int(i / units), u = int(i % units);
  float v[32];
  gguf::decode_unit<T>(w + size_t(row) * row_bytes, u, v);
  uint4* dst = reinterpret_cast<uint4*>(out + size_t(row) * k + size_t(u) * 32);
#pragma unroll
  for (int q = 0; q < 4; ++q) dst[q] = pack8<bf16>(v + 8 * q);
}

// One CTA per token, one thread per unit: out [num_tokens, dim] f32 (ids outside the table:
// zero rows; the host validates ids before launching).
template <DType T>
__global__ void gguf_embedding_kernel(const uint8_t* __restrict__ table, size_t row_bytes,
                                      int64_t vocab, int dim, const int32_t* __restrict__ tokens,
                                      float* __restrict__ out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t id = tokens[blockIdx.x];
  const bool ok = id >= 0 && id < vocab;
  float4* dst = reinterpret_cast<float4*>(out + int64_t(blockIdx.x) * dim);
  for (int u = threadIdx.x; u < dim / 32; u += blockDim.x) {
    float v[32] = {};
    if (ok) gguf::decode_unit<T>(table + size_t(id) * row_bytes, u, v);
#pragma unroll
    for (int q = 0; q < 8; ++q)
      dst[8 * u + q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
  }
}

int group_for(int units) {
  int g = 32;
  while (g > 1 && g > units) g /= 2;
  return g;
}

}  // namespace

bool gguf_blocks_supported(DType type, int64_t cols) {
  return dtype_is_quantized(type) && cols > 0 && cols % dtype_block_elems(type) == 0 &&
         cols % 32 == 0;
}

namespace {

template <typename TOut>
cudaError_t launch_group(const void* x, int m, const WeightGroup& p, cudaStream_t stream) {
  const QuantWeightArgs& w = p.w[0];
  if (m < 1 || m > kMaxQuantGemvRows || !gguf_blocks_supported(w.gguf_type, w.k)) {
    return cudaErrorInvalidValue;
  }
  const int rows = p.start[p.count];
  if (rows == 0) return cudaSuccess;
  const int group = group_for(w.k / 32);
  const dim3 grid((rows + kThreads / group - 1) / (kThreads / group));
  const auto* xb = static_cast<const bf16*>(x);
  cudaError_t err = cudaSuccess;
  gguf::dispatch(w.gguf_type, [&]<DType T>() {
    err = p.gate_up ? launch_kernel(gguf_gemv_kernel<T, TOut, true>, grid, dim3(kThreads), 0,
                                    stream, xb, m, p, group)
                    : launch_kernel(gguf_gemv_kernel<T, TOut, false>, grid, dim3(kThreads), 0,
                                    stream, xb, m, p, group);
  });
  return err;
}

bool same_family(const QuantWeightArgs& a, const QuantWeightArgs& b) {
  return a.kind == QuantKind::kGguf && b.kind == QuantKind::kGguf && a.gguf_type == b.gguf_type &&
         a.k == b.k && gguf_blocks_supported(a.gguf_type, a.k);
}

}  // namespace

cudaError_t launch_gguf_gemv(const void* x, int m, const QuantWeightArgs& w, void* out,
                             bool out_f32, cudaStream_t stream) {
  const WeightGroup p = single_group(w, out, 1);  // a tile is one row here
  return out_f32 ? launch_group<float>(x, m, p, stream) : launch_group<bf16>(x, m, p, stream);
}

bool gguf_gemv_multi_supported(const QuantWeightArgs* ws, int count) {
  return group_fits(ws, count, same_family);
}

cudaError_t launch_gguf_gemv_multi(const void* x, int m, const QuantWeightArgs* ws,
                                   void* const* outs, int count, cudaStream_t stream) {
  if (!gguf_gemv_multi_supported(ws, count)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, stacked_group(ws, outs, count, 1), stream);
}

bool gguf_gemv_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up) {
  return same_family(gate, up) && gate.n == up.n;
}

cudaError_t launch_gguf_gemv_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                     const QuantWeightArgs& up, void* out, cudaStream_t stream) {
  if (!gguf_gemv_gate_up_supported(gate, up)) return cudaErrorInvalidValue;
  return launch_group<bf16>(x, m, gate_up_group(gate, up, out, 1), stream);
}

cudaError_t launch_gguf_dequant(const QuantWeightArgs& w, void* out, cudaStream_t stream) {
  if (!gguf_blocks_supported(w.gguf_type, w.k)) return cudaErrorInvalidValue;
  const size_t units = size_t(w.n) * (w.k / 32);
  if (units == 0) return cudaSuccess;
  const size_t row_bytes = dtype_row_bytes(w.gguf_type, w.k);
  cudaError_t err = cudaSuccess;
  gguf::dispatch(w.gguf_type, [&]<DType T>() {
    err = launch_kernel(gguf_dequant_kernel<T>, dim3(unsigned((units + 255) / 256)), dim3(256), 0,
                        stream, static_cast<const uint8_t*>(w.data), row_bytes, w.n, w.k,
                        static_cast<bf16*>(out));
  });
  return err;
}

cudaError_t launch_gguf_embedding(const void* table, DType type, int64_t vocab, int dim,
                                  const int32_t* tokens, int num_tokens, float* out,
                                  cudaStream_t stream) {
  if (!gguf_blocks_supported(type, dim)) return cudaErrorInvalidValue;
  if (num_tokens == 0) return cudaSuccess;
  const size_t row_bytes = dtype_row_bytes(type, dim);
  cudaError_t err = cudaSuccess;
  gguf::dispatch(type, [&]<DType T>() {
    err = launch_kernel(gguf_embedding_kernel<T>, dim3(num_tokens), dim3(64), 0, stream,
                        static_cast<const uint8_t*>(table), row_bytes, vocab, dim, tokens, out);
  });
  return err;
}

}  // namespace tessera::cuda
