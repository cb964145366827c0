#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/blocks.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::cpu {
namespace {

constexpr int kRowTile = 4;     // activation rows per micro-kernel (register tile)
constexpr int kFewRows = 4;     // up to this many rows: decode weights in registers
constexpr int kPanelRows = 16;  // weight rows decoded together on the many-rows path

// Micro-kernel: kNW weight rows x kNR activation rows over all whole groups of `cols`.
// Each decoded group is reused for all kNR rows while it sits in registers.
template <DType kT, int kNW, int kNR>
inline void tile(const uint8_t* const* w_rows, const float* x, int64_t ldx, int64_t groups,
                 float (&acc_out)[kNW][kNR]) {
  // Separate accumulators for the two halves of a group: two independent FMAs per step
  // (a single `acc += lo * xl + hi * xh` compiles to mul + fma + add).
  F32x16 acc[kNW][kNR], acc2[kNW][kNR];
  for (int i = 0; i < kNW; ++i)
    for (int r = 0; r < kNR; ++r) acc[i][r] = acc2[i][r] = F32x16{};
  for (int64_t g = 0; g < groups; ++g) {
    F32x16 xl[kNR], xh[kNR];
    for (int r = 0; r < kNR; ++r) {
      xl[r] = load16(x + r * ldx + g * kGroup);
      xh[r] = load16(x + r * ldx + g * kGroup + 16);
    }
    for (int i = 0; i < kNW; ++i) {
      F32x16 lo, hi;
      Block<kT>::load(w_rows[i] + g * Block<kT>::kBytes, lo, hi);
      for (int r = 0; r < kNR; ++r) {
        acc[i][r] += lo * xl[r];
        acc2[i][r] += hi * xh[r];
      }
    }
  }
  for (int i = 0; i < kNW; ++i)
    for (int r = 0; r < kNR; ++r) acc_out[i][r] = hsum16(acc[i][r] + acc2[i][r]);
}

// Without AVX-512 a F32x16 is two ymm registers and only 16 exist: `tile`'s 4 x kNR x 2
// accumulators and kNR cached x groups spill on every group, so a 2-4 row step cost 2-3x a
// matvec per row. Here one weight row at a time: its decoded group stays in registers and
// is reused for every activation row, whose x is read from L1 instead of held.
template <DType kT, int kNR>
inline void tile_narrow(const uint8_t* w_row, const float* x, int64_t ldx, int64_t groups,
                        float (&acc_out)[1][kNR]) {
  F32x16 acc[kNR];
  for (int r = 0; r < kNR; ++r) acc[r] = F32x16{};
  for (int64_t g = 0; g < groups; ++g) {
    F32x16 lo, hi;
    Block<kT>::load(w_row + g * Block<kT>::kBytes, lo, hi);
    for (int r = 0; r < kNR; ++r) {
      acc[r] += lo * load16(x + r * ldx + g * kGroup);
      acc[r] += hi * load16(x + r * ldx + g * kGroup + 16);
    }
  }
  for (int r = 0; r < kNR; ++r) acc_out[0][r] = hsum16(acc[r]);
}

#if defined(__AVX512F__)
constexpr bool kWideRegisters = true;
#else
constexpr bool kWideRegisters = false;
#endif

// Adds the values of a float-typed row past the last whole group (quantized rows have none).
template <DType kT>
float tail_dot(const uint8_t* w_row, const float* x, int64_t from, int64_t cols) {
  if constexpr (dtype_is_float(kT)) {
    float s = 0.0f;
    for (int64_t k = from; k < cols; ++k) s += Block<kT>::scalar(w_row, k) * x[k];
    return s;
  } else {
    (void)w_row, (void)x, (void)from, (void)cols;
    return 0.0f;
  }
}

// Weight rows [n0, n0 + kNW) x activation rows [r0, r0 + kNR) of the output.
template <DType kT, int kNW, int kNR>
inline void block_out(const uint8_t* w, size_t w_stride, int64_t n0, const float* x, int64_t ldx,
                      int64_t r0, int64_t cols, float* out, int64_t ldo) {
  const uint8_t* w_rows[kNW];
  for (int i = 0; i < kNW; ++i) w_rows[i] = w + (n0 + i) * w_stride;
  const int64_t groups = cols / kGroup;
  float acc[kNW][kNR];
  if constexpr (!kWideRegisters && kNW == 1)
    tile_narrow<kT, kNR>(w_rows[0], x + r0 * ldx, ldx, groups, acc);
  else
    tile<kT, kNW, kNR>(w_rows, x + r0 * ldx, ldx, groups, acc);
  for (int i = 0; i < kNW; ++i) {
    for (int r = 0; r < kNR; ++r) {
      float v = acc[i][r];
      if (groups * kGroup < cols) {
        v += tail_dot<kT>(w_rows[i], x + (r0 + r) * ldx, groups * kGroup, cols);
      }
      out[(r0 + r) * ldo + n0 + i] = v;
    }
  }
}

// All activation rows (r0 .. r0 + kNR) against weight rows [nb, ne).
template <DType kT, int kNR>
void rows_against(const uint8_t* w, size_t w_stride, int64_t nb, int64_t ne, const float* x,
                  int64_t ldx, int64_t r0, int64_t cols, float* out, int64_t ldo) {
  constexpr int kNW = !kWideRegisters ? 1 : kNR <= 2 ? 4 : 2;
  int64_t n = nb;
  for (; n + kNW <= ne; n += kNW)
    block_out<kT, kNW, kNR>(w, w_stride, n, x, ldx, r0, cols, out, ldo);
  for (; n < ne; ++n) block_out<kT, 1, kNR>(w, w_stride, n, x, ldx, r0, cols, out, ldo);
}

// Batch-1 matvec of a quantized weight, weight rows [nb, ne): per group one mul + two FMAs
// (sum q x, then scaled by d), and for Q4_1 the min through the group sums of x.
template <DType kT, int kNW>
inline void matvec_rows(const uint8_t* w, size_t stride, int64_t n0, const float* x,
                        const float* sx, int64_t groups, float* out) {
  F32x16 acc[kNW];
  float macc[kNW];
  for (int i = 0; i < kNW; ++i) {
    acc[i] = F32x16{};
    macc[i] = 0.0f;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const F32x16 xl = load16(x + g * kGroup);
    const F32x16 xh = load16(x + g * kGroup + 16);
    for (int i = 0; i < kNW; ++i) {
      F32x16 lo, hi;
      float d, m;
      RawBlock<kT>::load(w + (n0 + i) * stride + g * Block<kT>::kBytes, lo, hi, d, m);
      F32x16 t = lo * xl;
      t += hi * xh;
      acc[i] += t * d;
      if constexpr (RawBlock<kT>::kHasMin) macc[i] += m * sx[g];
    }
  }
  for (int i = 0; i < kNW; ++i) out[n0 + i] = hsum16(acc[i]) + macc[i];
}

template <DType kT>
void matvec_quant(const MatmulArgs& a, int64_t nb, int64_t ne) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const size_t stride = dtype_row_bytes(kT, a.cols);
  const int64_t groups = a.cols / kGroup;
  thread_local std::vector<float> sx;
  if constexpr (RawBlock<kT>::kHasMin) {
    sx.resize(groups);
    for (int64_t g = 0; g < groups; ++g) {
      sx[g] = hsum16(load16(a.x + g * kGroup) + load16(a.x + g * kGroup + 16));
    }
  }
  int64_t n = nb;
  for (; n + 4 <= ne; n += 4) matvec_rows<kT, 4>(w, stride, n, a.x, sx.data(), groups, a.out);
  for (; n < ne; ++n) matvec_rows<kT, 1>(w, stride, n, a.x, sx.data(), groups, a.out);
}

template <DType kT>
void few_rows(const MatmulArgs& a, int64_t nb, int64_t ne) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const size_t stride = dtype_row_bytes(kT, a.cols);
  const int64_t ldx = a.cols;
  if constexpr (dtype_is_quantized_v(kT)) {
    if (a.rows == 1 && !a.batch_invariant) {
      matvec_quant<kT>(a, nb, ne);
      return;
    }
  }
  switch (a.rows) {
    case 1:
      rows_against<kT, 1>(w, stride, nb, ne, a.x, ldx, 0, a.cols, a.out, a.n);
      break;
    case 2:
      rows_against<kT, 2>(w, stride, nb, ne, a.x, ldx, 0, a.cols, a.out, a.n);
      break;
    case 3:
      rows_against<kT, 3>(w, stride, nb, ne, a.x, ldx, 0, a.cols, a.out, a.n);
      break;
    default:
      rows_against<kT, 4>(w, stride, nb, ne, a.x, ldx, 0, a.cols, a.out, a.n);
      break;
  }
}

// Many rows: weight rows [nb, ne) in panels; each panel is decoded to f32 once (unless it
// already is f32) and every activation row is swept over it.
template <DType kT>
void many_rows(const MatmulArgs& a, int64_t nb, int64_t ne, std::vector<float>& panel) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const size_t stride = dtype_row_bytes(kT, a.cols);
  const int64_t ldx = a.cols;
  for (int64_t p0 = nb; p0 < ne; p0 += kPanelRows) {
    const int64_t p1 = std::min(ne, p0 + kPanelRows);
    const uint8_t* pw = w;
    size_t pstride = stride;
    int64_t pn0 = p0;  // index of the panel's first row within pw
    if constexpr (kT != DType::kF32) {
      panel.resize(static_cast<size_t>(kPanelRows * a.cols));
      for (int64_t n = p0; n < p1; ++n) {
        dequantize_row(kT, w + n * stride, a.cols, panel.data() + (n - p0) * a.cols);
      }
      pw = reinterpret_cast<const uint8_t*>(panel.data());
      pstride = static_cast<size_t>(a.cols) * sizeof(float);
      pn0 = 0;
    }
    // Outputs go to columns p0.., so shift the output base to undo the panel-local index.
    float* out = a.out + (p0 - pn0);
    int64_t r = 0;
    for (; r + kRowTile <= a.rows; r += kRowTile) {
      rows_against<DType::kF32, kRowTile>(pw, pstride, pn0, pn0 + (p1 - p0), a.x, ldx, r, a.cols,
                                          out, a.n);
    }
    for (; r < a.rows; ++r) {
      rows_against<DType::kF32, 1>(pw, pstride, pn0, pn0 + (p1 - p0), a.x, ldx, r, a.cols, out,
                                   a.n);
    }
  }
}

}  // namespace

void dequantize_row(DType t, const void* row, int64_t cols, float* out) {
  const auto* p = static_cast<const uint8_t*>(row);
  dispatch_dtype(t, [&]<DType kT>() {
    if constexpr (dtype_is_kquant_v(kT)) {
      tessera::dequantize(kT, p, out, cols);
    } else {
      const int64_t groups = cols / kGroup;
      for (int64_t g = 0; g < groups; ++g) {
        F32x16 lo, hi;
        Block<kT>::load(p + g * Block<kT>::kBytes, lo, hi);
        store16(out + g * kGroup, lo);
        store16(out + g * kGroup + 16, hi);
      }
      if constexpr (dtype_is_float(kT)) {
        for (int64_t k = groups * kGroup; k < cols; ++k) out[k] = Block<kT>::scalar(p, k);
      }
    }
  });
}

void matmul(ThreadPool& pool, const MatmulArgs& a) {
  if (a.rows <= 0 || a.n <= 0) return;
  const bool few = a.rows <= kFewRows;
  // Enough tasks that a descheduled core does not hold up the step, in whole panels.
  const int64_t align = few ? 4 : kPanelRows;
  const int64_t units = (a.n + align - 1) / align;
  const int num_tasks =
      static_cast<int>(std::min<int64_t>(units, static_cast<int64_t>(pool.size()) * 4));
  dispatch_dtype(a.w_dtype, [&]<DType kT>() {
    pool.run(num_tasks, [&](int task) {
      const Range range = split_range(a.n, num_tasks, task, align);
      if (range.begin >= range.end) return;
      if constexpr (dtype_is_kquant_v(kT)) {
        // Rows decoded into a panel by the host dequantizer at every batch size: K-quants
        // are read, not tuned for, on the CPU.
        thread_local std::vector<float> panel;
        many_rows<kT>(a, range.begin, range.end, panel);
      } else if (few) {
        few_rows<kT>(a, range.begin, range.end);
      } else {
        thread_local std::vector<float> panel;
        many_rows<kT>(a, range.begin, range.end, panel);
      }
    });
  });
}

void matmul_decoded(ThreadPool& pool, const float* x, int64_t rows, int64_t n, int64_t cols,
                    const RowDecoder& decode, float* out) {
  if (rows <= 0 || n <= 0) return;
  const int64_t units = (n + kPanelRows - 1) / kPanelRows;
  const int num_tasks =
      static_cast<int>(std::min<int64_t>(units, static_cast<int64_t>(pool.size()) * 4));
  pool.run(num_tasks, [&](int task) {
    const Range range = split_range(n, num_tasks, task, kPanelRows);
    thread_local std::vector<float> panel;
    panel.resize(static_cast<size_t>(kPanelRows * cols));
    const auto* pw = reinterpret_cast<const uint8_t*>(panel.data());
    const size_t pstride = static_cast<size_t>(cols) * sizeof(float);
    for (int64_t p0 = range.begin; p0 < range.end; p0 += kPanelRows) {
      const int64_t pn = std::min(range.end, p0 + kPanelRows) - p0;
      decode(p0, pn, panel.data());
      float* o = out + p0;  // panel row i is output column p0 + i
      int64_t r = 0;
      for (; r + kRowTile <= rows; r += kRowTile)
        rows_against<DType::kF32, kRowTile>(pw, pstride, 0, pn, x, cols, r, cols, o, n);
      for (; r < rows; ++r)
        rows_against<DType::kF32, 1>(pw, pstride, 0, pn, x, cols, r, cols, o, n);
    }
  });
}

}  // namespace tessera::cpu
