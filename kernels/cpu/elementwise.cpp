#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/cpu/blocks.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::cpu {
namespace {

// Rows per task so that tiny ops (one decode row) do not pay for a pool dispatch.
int tasks_for(ThreadPool& pool, int64_t rows, int64_t work_per_row) {
  constexpr int64_t kMinWork = 16384;
  const int64_t by_work = std::max<int64_t>(1, rows * work_per_row / kMinWork);
  return static_cast<int>(std::min<int64_t>({rows, by_work, pool.size() * 2}));
}

}  // namespace

void add_rms_norm(ThreadPool& pool, float* residual, const float* x, const float* gamma,
                  int64_t rows, int64_t dim, float eps, float* out) {
  const int tasks = tasks_for(pool, rows, dim);
  pool.run(tasks, [&](int task) {
    const Range range = split_range(rows, tasks, task, 1);
    for (int64_t r = range.begin; r < range.end; ++r) {
      float* h = residual + r * dim;
      if (x != nullptr) {
        const float* xr = x + r * dim;
        for (int64_t i = 0; i < dim; ++i) h[i] += xr[i];
      }
      const float mean_sq = dot_f32(h, h, dim) / static_cast<float>(dim);
      const float inv = 1.0f / std::sqrt(mean_sq + eps);
      float* o = out + r * dim;
      for (int64_t i = 0; i < dim; ++i) o[i] = h[i] * inv * gamma[i];
    }
  });
}

void silu_mul(ThreadPool& pool, const float* gate, const float* up, int64_t count, float* out) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  const int tasks = static_cast<int>(std::min<int64_t>(chunks, pool.size()));
  pool.run(tasks, [&](int task) {
    const Range range = split_range(count, tasks, task, 16);
    for (int64_t i = range.begin; i < range.end; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void embedding(ThreadPool& pool, DType dtype, const void* table, int64_t vocab, int64_t dim,
               std::span<const int32_t> tokens, float* out) {
  for (const int32_t id : tokens) {
    if (id < 0 || id >= vocab) {
      throw Error(ErrorKind::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(vocab) + ")");
    }
  }
  const auto rows = static_cast<int64_t>(tokens.size());
  const size_t row_bytes = dtype_row_bytes(dtype, dim);
  const int tasks = tasks_for(pool, rows, dim);
  pool.run(tasks, [&](int task) {
    const Range range = split_range(rows, tasks, task, 1);
    for (int64_t t = range.begin; t < range.end; ++t) {
      const auto* row = static_cast<const uint8_t*>(table) + tokens[t] * row_bytes;
      dequantize_row(dtype, row, dim, out + t * dim);
    }
  });
}

}  // namespace tessera::cpu
