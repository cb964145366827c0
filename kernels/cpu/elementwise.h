#pragma once
// Row-wise CPU kernels: fused residual-add + RMSNorm, SiLU(gate) * up, embedding lookup.
#include <cstdint>
#include <span>

#include "kernels/dtype.h"

namespace tessera::cpu {

class ThreadPool;

// residual: [rows, dim]; if x: residual += x; out = residual / rms(residual) * gamma.
void add_rms_norm(ThreadPool& pool, float* residual, const float* x, const float* gamma,
                  int64_t rows, int64_t dim, float eps, float* out);

// out = silu(gate) * up, elementwise over count values.
void silu_mul(ThreadPool& pool, const float* gate, const float* up, int64_t count, float* out);

// out[t] = row tokens[t] of table [vocab, dim] (any DType), decoded to f32. Throws
// Error(kInvalidArgument) for an id outside [0, vocab).
void embedding(ThreadPool& pool, DType dtype, const void* table, int64_t vocab, int64_t dim,
               std::span<const int32_t> tokens, float* out);

}  // namespace tessera::cpu
