// The conversions around quantized GEMMs (see quant.h): a quantized weight to bf16, bf16
// activations to per-token FP8, and the per-token x per-channel scaling of an FP8 GEMM's
// output. Plain element-wise kernels: they move bytes and are bandwidth-bound.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant.h"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;

// One thread per weight value (two per byte for int4 share nothing but the byte).
__global__ void dequant_weight_kernel(const QuantWeightArgs a, bf16* __restrict__ out) {
  pdl_wait();
  pdl_launch_dependents();
  const size_t total = size_t(a.n) * a.k;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int row = static_cast<int>(i / a.k), c = static_cast<int>(i % a.k);
    const auto* d = static_cast<const uint8_t*>(a.data);
    float v;
    if (a.kind == QuantKind::kFp8) {
      const __half_raw h = __nv_cvt_fp8_to_halfraw(d[i], __NV_E4M3);
      v = __half2float(*reinterpret_cast<const __half*>(&h)) * a.scales[a.per_channel ? row : 0];
    } else {
      const int g = a.g_idx ? a.g_idx[c] : (a.group_size > 0 ? c / a.group_size : 0);
      const size_t gi = size_t(row) * a.num_groups + g;
      float q, z;
      if (a.kind == QuantKind::kInt8) {
        q = float(static_cast<int8_t>(d[i]));
        z = 0.f;
      } else {
        // [n, k / 2]: element i's byte is i / 2 (k is even)
        const uint8_t byte = d[a.tiled ? int4_tiled_offset(row, c, a.k) : i / 2];
        q = float((i & 1) ? byte >> 4 : byte & 0xF);
        z = a.has_zeros ? float(a.zeros[gi]) : 8.f;
      }
      v = (q - z) * a.scales[gi];
    }
    out[i] = __float2bfloat16(v);
  }
}

// One block per row: amax, then the scaled e4m3 values (saturating, as the e4m3 cast does).
__global__ void quantize_fp8_rows_kernel(const bf16* __restrict__ x, int k,
                                         __nv_fp8_storage_t* __restrict__ q,
                                         float* __restrict__ scales) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float scratch[32];
  const bf16* xr = x + size_t(blockIdx.x) * k;
  float amax = 0.f;
  for (int i = threadIdx.x; i < k; i += blockDim.x)
    amax = fmaxf(amax, fabsf(__bfloat162float(xr[i])));
  amax = block_max(amax, scratch);
  const float scale = amax > 0.f ? amax / 448.f : 1.f;
  const float inv = 1.f / scale;
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  __nv_fp8_storage_t* qr = q + size_t(blockIdx.x) * k;
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    qr[i] = __nv_cvt_float_to_fp8(__bfloat162float(xr[i]) * inv, __NV_SATFINITE, __NV_E4M3);
  }
}

__global__ void scale_output_kernel(bf16* __restrict__ out, int m, int n,
                                    const float* __restrict__ row_scale,
                                    const float* __restrict__ col_scale, bool per_channel) {
  pdl_wait();
  pdl_launch_dependents();
  const size_t total = size_t(m) * n;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int r = static_cast<int>(i / n), c = static_cast<int>(i % n);
    const float s = row_scale[r] * col_scale[per_channel ? c : 0];
    out[i] = __float2bfloat16(__bfloat162float(out[i]) * s);
  }
}

dim3 grid_for(size_t total) {
  const size_t blocks = (total + 255) / 256;
  return dim3(static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8));
}

}  // namespace

cudaError_t launch_dequant_weight(const QuantWeightArgs& w, void* out, cudaStream_t stream) {
  if (w.kind == QuantKind::kGguf) return launch_gguf_dequant(w, out, stream);
  if (w.n < 0 || w.k <= 0 || (w.kind == QuantKind::kInt4 && w.k % 2 != 0)) {
    return cudaErrorInvalidValue;
  }
  if (w.n == 0) return cudaSuccess;
  return launch_kernel(dequant_weight_kernel, grid_for(size_t(w.n) * w.k), dim3(256), 0, stream, w,
                       static_cast<bf16*>(out));
}

cudaError_t launch_quantize_fp8_rows(const void* x, int m, int k, void* q, float* scales,
                                     cudaStream_t stream) {
  if (m < 0 || k <= 0) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  return launch_kernel(quantize_fp8_rows_kernel, dim3(m), dim3(256), 0, stream,
                       static_cast<const bf16*>(x), k, static_cast<__nv_fp8_storage_t*>(q), scales);
}

cudaError_t launch_scale_output(void* out, int m, int n, const float* row_scale,
                                const float* col_scale, bool per_channel, cudaStream_t stream) {
  if (m < 0 || n < 0) return cudaErrorInvalidValue;
  if (size_t(m) * n == 0) return cudaSuccess;
  return launch_kernel(scale_output_kernel, grid_for(size_t(m) * n), dim3(256), 0, stream,
                       static_cast<bf16*>(out), m, n, row_scale, col_scale, per_channel);
}

}  // namespace tessera::cuda
