#pragma once
// The weights one launch of a quantized GEMV / GEMM takes together, shared by the tensor-core
// kernels (gemv_quant_mma.cu, gemm_int4_mma.cu) and the GGUF-blocks GEMV (gguf.cu): one weight,
// up to three stacked (Q, K, V: weight i owns tiles [start[i], start[i + 1])), or gate_up (w[0]
// gate, w[1] up: a tile holds the same rows of both and writes silu(gate) * up to out[0]).
// A tile is what the kernel gives one unit of work: 16 rows for the tensor-core kernels (8 of
// gate and 8 of up in gate_up), one row for the GGUF GEMV.
#include "kernels/cuda/quant.h"

namespace tessera::cuda {

constexpr int kMaxGroupWeights = 3;
struct WeightGroup {
  QuantWeightArgs w[kMaxGroupWeights];
  void* out[kMaxGroupWeights];
  int start[kMaxGroupWeights + 1];
  int count = 1;
  bool gate_up = false;
};

inline int tiles_of(int n, int rows_per_tile) {
  return (n + rows_per_tile - 1) / rows_per_tile;
}

inline WeightGroup single_group(const QuantWeightArgs& w, void* out, int rows_per_tile) {
  WeightGroup p;
  p.w[0] = w;
  p.out[0] = out;
  p.start[0] = 0;
  p.start[1] = tiles_of(w.n, rows_per_tile);
  return p;
}

// count <= kMaxGroupWeights (the callers check it with group_fits).
inline WeightGroup stacked_group(const QuantWeightArgs* ws, void* const* outs, int count,
                                 int rows_per_tile) {
  WeightGroup p;
  p.count = count;
  p.start[0] = 0;
  for (int i = 0; i < count; ++i) {
    p.w[i] = ws[i];
    p.out[i] = outs[i];
    p.start[i + 1] = p.start[i] + tiles_of(ws[i].n, rows_per_tile);
  }
  return p;
}

// rows_per_tile: rows of each of gate and up in a tile.
inline WeightGroup gate_up_group(const QuantWeightArgs& gate, const QuantWeightArgs& up, void* out,
                                 int rows_per_tile) {
  WeightGroup p;
  p.gate_up = true;
  p.count = 2;
  p.w[0] = gate;
  p.w[1] = up;
  p.out[0] = out;
  p.start[0] = 0;
  p.start[1] = p.start[2] = tiles_of(gate.n, rows_per_tile);
  return p;
}

// 1..kMaxGroupWeights weights that same(ws[0], ws[i]) accepts.
template <class Same>
bool group_fits(const QuantWeightArgs* ws, int count, Same&& same) {
  if (count < 1 || count > kMaxGroupWeights) return false;
  for (int i = 0; i < count; ++i) {
    if (!same(ws[0], ws[i])) return false;
  }
  return true;
}

}  // namespace tessera::cuda
