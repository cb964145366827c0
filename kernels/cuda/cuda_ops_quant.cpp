// CudaOps for weights kept quantized on the GPU (fp8 / int8 / int4, kernels/weight_scheme.h;
// GGUF blocks with set_gguf_blocks): upload without dequantizing, and the kernel choice per
// batch size (GGUF blocks: their own GEMV up to kMaxQuantGemvRows, else dequantize):
//   rows <= kMaxQuantGemvRows  the quantized GEMV (dequantization in registers);
//   tiled int4, up to 64 rows  the int4 tensor-core GEMM (gemm_int4_mma.cu), same decoding;
//   fp8, more rows             W8A8: per-token dynamic FP8 activations, cuBLASLt FP8 GEMM,
//                              then per-token x per-channel output scaling;
//   int8 / int4, more rows     dequantize the weight to a bf16 scratch, cuBLASLt bf16.
// The LM head (f32 logits) takes the GEMV in chunks of rows. TESSERA_FP8_GEMM=0 sends fp8
// weights to the dequantize path as well (a fallback should cuBLASLt FP8 misbehave).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/quant.h"
#include "kernels/scheme_ref.h"

namespace tessera::cuda {
namespace {

constexpr size_t kAlign = 256;

size_t align_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

bool fp8_gemm_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_FP8_GEMM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Up to this many rows tiled int4 weights stay in the quantized kernels (the GEMM, or the
// GEMV in chunks of kMaxQuantGemvRows where TESSERA_INT4_GEMM=0) rather than a bf16 copy of
// the weight for cuBLASLt, which writes and reads all the bf16 bytes (bench/results/gpu.md).
// TESSERA_INT4_GEMV_ROWS overrides it (measurements).
int int4_gemv_rows(const QuantWeightArgs& a) {
  static const int rows = [] {
    const char* v = std::getenv("TESSERA_INT4_GEMV_ROWS");
    return v != nullptr ? std::atoi(v) : 64;
  }();
  return a.kind == QuantKind::kInt4 && a.tiled ? rows : 0;
}

// Whether `rows` rows of x take the quantized GEMV (in chunks of kMaxQuantGemvRows) for `a`.
bool gemv_takes_rows(int rows, const QuantWeightArgs& a) {
  return rows <= kMaxQuantGemvRows || rows <= int4_gemv_rows(a);
}

// Calls f(first_row, count, gemm) for consecutive chunks of rows: with the int4 GEMM, chunks
// of up to kMaxInt4GemmRows rows (gemm = true; a last one of at most kMaxQuantGemvRows takes
// the GEMV), else of kMaxQuantGemvRows rows.
template <class F>
void for_each_row_chunk(int rows, bool gemm, F&& f) {
  for (int r0 = 0; r0 < rows;) {
    const bool big = gemm && rows - r0 > kMaxQuantGemvRows;
    const int m = std::min(big ? kMaxInt4GemmRows : kMaxQuantGemvRows, rows - r0);
    f(r0, m, big);
    r0 += m;
  }
}

// Weights this large only reach the LM head, which takes the GEMV: no dequantize scratch.
constexpr int64_t kMaxScratchRows = 65536;

}  // namespace

bool CudaOps::is_scheme(const Weight& w) {
  return w.scheme.quantized();  // GGUF weights are a scheme only when kept as blocks
}

Weight CudaOps::upload_gguf(const HostTensor& t) {
  if (t.rows > INT32_MAX || t.cols > INT32_MAX) {
    throw Error(ErrorKind::kInvalidArgument, "upload: GGUF weight too large");
  }
  const size_t bytes = size_t(t.rows) * dtype_row_bytes(t.dtype, t.cols);
  void* dev = alloc(bytes);
  Weight w;
  w.owner = std::shared_ptr<void>(dev, [](void* p) { cudaFree(p); });
  check_cuda(cudaMemcpy(dev, t.data, bytes, cudaMemcpyHostToDevice), "upload(gguf)");
  w.data = dev;
  w.dtype = t.dtype;
  w.rows = t.rows;
  w.cols = t.cols;
  w.scheme.kind = QuantKind::kGguf;
  w.num_groups = 1;
  if (t.rows <= kMaxScratchRows || deterministic_) {  // as upload_scheme
    if (dequant_scratch_.reserve(size_t(t.rows) * t.cols * 2)) clear_graphs();
  }
  return w;
}

Weight CudaOps::upload_scheme(const HostTensor& t) {
  const SchemeView v = scheme_view(t);  // validates
  if (v.rows > INT32_MAX || v.cols > INT32_MAX) {
    throw Error(ErrorKind::kInvalidArgument, "upload: quantized weight too large");
  }
  const size_t data_bytes = v.data_bytes(), scale_bytes = v.scale_count() * sizeof(float);
  const size_t zero_bytes = v.zero_count(), gidx_bytes = v.g_idx ? size_t(v.cols) * 4 : 0;
  const size_t stored_bytes = t.scheme.kind == QuantKind::kInt4
                                  ? std::max(data_bytes, int4_tiled_bytes(int(v.rows), int(v.cols)))
                                  : data_bytes;
  const size_t total =
      align_up(stored_bytes) + align_up(scale_bytes) + align_up(zero_bytes) + align_up(gidx_bytes);
  auto* base = static_cast<uint8_t*>(alloc(total));
  Weight w;
  w.owner = std::shared_ptr<void>(base, [](void* p) { cudaFree(p); });
  w.dtype = t.dtype;
  w.rows = t.rows;
  w.cols = t.cols;
  w.scheme = t.scheme;
  w.num_groups = v.num_groups;
  size_t at = 0;
  auto put = [&](const void* src, size_t bytes) -> void* {
    if (bytes == 0) return nullptr;
    void* dst = base + at;
    check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload(quantized)");
    at += align_up(bytes);
    return dst;
  };
  QuantWeightArgs probe = quant_args(w);
  probe.g_idx = v.g_idx;  // only whether there is one counts
  if (int4_tiled(probe)) {
    std::vector<uint8_t> tiled(int4_tiled_bytes(probe.n, probe.k));
    tile_int4(static_cast<const uint8_t*>(v.data), probe.n, probe.k, tiled.data());
    w.data = put(tiled.data(), tiled.size());
    int4_gemm_ws();
  } else {
    w.data = put(v.data, data_bytes);
  }
  w.scales = static_cast<const float*>(put(v.scales, scale_bytes));
  w.zeros = static_cast<const uint8_t*>(put(v.zeros, zero_bytes));
  w.g_idx = static_cast<const int32_t*>(put(v.g_idx, gidx_bytes));
  if (t.rows <= kMaxScratchRows || deterministic_) {  // deterministic: always dequantized
    // Reserved now, never inside a graph capture.
    if (dequant_scratch_.reserve(size_t(t.rows) * t.cols * 2)) clear_graphs();
    if (t.scheme.kind == QuantKind::kFp8) max_fp8_cols_ = std::max(max_fp8_cols_, t.cols);
  }
  return w;
}

void* CudaOps::int4_gemm_ws() {
  if (int4_gemm_scratch_.ptr == nullptr && !capturing() &&
      int4_gemm_scratch_.reserve(gemm_int4_workspace_bytes())) {
    check_cuda(cudaMemset(int4_gemm_scratch_.ptr, 0, int4_gemm_scratch_.bytes), "memset");
    clear_graphs();
  }
  return int4_gemm_scratch_.ptr;
}

QuantWeightArgs CudaOps::quant_args(const Weight& w) {
  QuantWeightArgs a;
  a.data = w.data;
  a.scales = w.scales;
  a.zeros = w.scheme.has_zeros ? w.zeros : nullptr;
  a.g_idx = w.scheme.act_order ? w.g_idx : nullptr;
  a.kind = w.scheme.kind;
  a.group_size = w.scheme.group_size;
  a.num_groups = static_cast<int>(w.num_groups > 0 ? w.num_groups : 1);
  a.per_channel = w.scheme.per_channel;
  a.has_zeros = w.scheme.has_zeros && w.zeros != nullptr;
  a.n = static_cast<int>(w.rows);
  a.k = static_cast<int>(w.cols);
  if (w.scheme.kind == QuantKind::kGguf) a.gguf_type = w.dtype;
  a.tiled = int4_tiled(a);
  return a;
}

void CudaOps::reserve_fp8_activations(int tokens) {
  if (max_fp8_cols_ == 0) return;
  const size_t need = align_up(size_t(tokens) * max_fp8_cols_) + size_t(tokens) * 4;
  if (act_scratch_.reserve(need)) clear_graphs();
}

void CudaOps::matmul_scheme(const void* x, int rows, const Weight& w, void* out, bool out_f32) {
  if (rows <= 0) return;
  const QuantWeightArgs a = quant_args(w);
  const bool gemv = gemv_quant_supported(a);
  if (gemv && (out_f32 || gemv_takes_rows(rows, a))) {
    // The LM head's rows go through in chunks: its f32 logits have no cuBLASLt path here.
    for_each_row_chunk(rows, gemm_int4_mma_supported(a), [&](int r0, int m, bool gemm) {
      const void* xr = static_cast<const uint8_t*>(x) + size_t(r0) * a.k * 2;
      void* o = static_cast<uint8_t*>(out) + size_t(r0) * a.n * (out_f32 ? 4 : 2);
      if (gemm) {
        check_cuda(launch_gemm_int4_mma(xr, m, a, o, out_f32, int4_gemm_ws(), stream_),
                   "gemm_int4_mma");
      } else {
        check_cuda(launch_gemv_quant(xr, m, a, o, out_f32, stream_), "gemv_quant");
      }
    });
    return;
  }
  const size_t act_need = align_up(size_t(rows) * a.k) + size_t(rows) * 4;
  const bool w8a8 = a.kind == QuantKind::kFp8 && fp8_gemm_enabled() && fp8_gemm_ok_ && !out_f32 &&
                    a.k % 16 == 0 && a.n % 8 == 0;
  if (w8a8 && act_scratch_.bytes < act_need && !capturing()) {
    if (act_scratch_.reserve(act_need)) clear_graphs();  // begin_step reserves it normally
  }
  if (w8a8 && act_scratch_.bytes >= act_need) {
    auto* q = static_cast<uint8_t*>(act_scratch_.ptr);
    auto* scales = reinterpret_cast<float*>(q + align_up(size_t(rows) * a.k));
    check_cuda(launch_quantize_fp8_rows(x, rows, a.k, q, scales, stream_), "quantize_fp8_rows");
    try {
      gemm_->run_fp8(q, rows, a.data, a.n, a.k, out, stream_);
      check_cuda(launch_scale_output(out, rows, a.n, scales, a.scales, a.per_channel, stream_),
                 "scale_output");
      return;
    } catch (const Error& e) {
      // No cuBLASLt FP8 algorithm here (its plan is made before any launch): dequantize.
      std::fprintf(stderr, "tessera: FP8 GEMM unavailable (%s); fp8 weights are dequantized\n",
                   e.what());
      fp8_gemm_ok_ = false;
    }
  }
  const size_t need = size_t(a.n) * a.k * 2;
  if (dequant_scratch_.bytes < need) {
    if (capturing()) {
      throw Error(ErrorKind::kInternal, "quantized matmul needs a new scratch inside capture");
    }
    if (dequant_scratch_.reserve(need)) clear_graphs();
  }
  check_cuda(launch_dequant_weight(a, dequant_scratch_.ptr, stream_), "dequant_weight");
  gemm_->run(x, rows, dequant_scratch_.ptr, a.n, a.k, out, out_f32, stream_);
}

bool CudaOps::matmul_multi_scheme(const void* x, int rows, std::span<const Weight* const> ws,
                                  std::span<void* const> outs) {
  constexpr int kMax = 3;
  if (deterministic_ || rows < 1 || ws.empty() || ws.size() > kMax) return false;
  QuantWeightArgs a[kMax];
  for (size_t i = 0; i < ws.size(); ++i) {
    if (!is_scheme(*ws[i])) return false;
    a[i] = quant_args(*ws[i]);
  }
  const int count = static_cast<int>(ws.size());
  if (a[0].kind == QuantKind::kGguf) {  // GGUF blocks: one GEMV launch at decode sizes
    if (rows > kMaxQuantGemvRows || !gguf_gemv_multi_supported(a, count)) return false;
    check_cuda(launch_gguf_gemv_multi(x, rows, a, outs.data(), count, stream_), "gguf_gemv_multi");
    return true;
  }
  for (int i = 0; i < count; ++i) {
    if (!gemv_quant_mma_supported(a[i])) return false;
  }
  if (!gemv_quant_mma_multi_supported(a, count) || !gemv_takes_rows(rows, a[0])) return false;
  const bool gemm = gemm_int4_mma_multi_supported(a, count);
  for_each_row_chunk(rows, gemm, [&](int r0, int m, bool big) {
    void* o[kMax];
    for (int i = 0; i < count; ++i) o[i] = static_cast<uint8_t*>(outs[i]) + size_t(r0) * a[i].n * 2;
    const void* xr = static_cast<const uint8_t*>(x) + size_t(r0) * a[0].k * 2;
    if (big) {
      check_cuda(launch_gemm_int4_mma_multi(xr, m, a, o, count, int4_gemm_ws(), stream_),
                 "gemm_int4_mma_multi");
    } else {
      check_cuda(launch_gemv_quant_mma_multi(xr, m, a, o, count, stream_), "gemv_quant_mma_multi");
    }
  });
  return true;
}

bool CudaOps::gate_up_silu_scheme(const void* x, int rows, const Weight& gate, const Weight& up,
                                  void* out) {
  if (deterministic_ || rows < 1 || !is_scheme(gate) || !is_scheme(up)) return false;
  const QuantWeightArgs g = quant_args(gate), u = quant_args(up);
  if (g.kind == QuantKind::kGguf) {  // GGUF blocks: one GEMV launch at decode sizes
    if (rows > kMaxQuantGemvRows || !gguf_gemv_gate_up_supported(g, u)) return false;
    check_cuda(launch_gguf_gemv_gate_up(x, rows, g, u, out, stream_), "gguf_gemv_gate_up");
    return true;
  }
  if (!gemv_quant_mma_gate_up_supported(g, u) || !gemv_takes_rows(rows, g)) return false;
  for_each_row_chunk(rows, gemm_int4_mma_gate_up_supported(g, u), [&](int r0, int m, bool big) {
    const void* xr = static_cast<const uint8_t*>(x) + size_t(r0) * g.k * 2;
    void* o = static_cast<uint8_t*>(out) + size_t(r0) * g.n * 2;
    if (big) {
      check_cuda(launch_gemm_int4_mma_gate_up(xr, m, g, u, o, int4_gemm_ws(), stream_),
                 "gemm_int4_mma_gate_up");
    } else {
      check_cuda(launch_gemv_quant_mma_gate_up(xr, m, g, u, o, stream_), "gemv_quant_mma_gate_up");
    }
  });
  return true;
}

}  // namespace tessera::cuda
