#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/fp8.h"

// The F32x16 helpers are inline; their by-value vector ABI never crosses a TU.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::cpu {

std::vector<double> rope_inv_freq(const RopeConfig& rope, int head_dim) {
  const int rot = rope.rotary_dim > 0 ? rope.rotary_dim : head_dim;
  std::vector<double> inv(rot / 2);
  for (int i = 0; i < rot / 2; ++i) {
    inv[i] = 1.0 / std::pow(static_cast<double>(rope.theta), 2.0 * i / rot);
  }
  if (rope.scaling_factor > 0.0f) {
    // Llama-3: long wavelengths are slowed by `factor`, short ones kept, the band between
    // interpolated linearly in 1 / wavelength.
    const double factor = rope.scaling_factor;
    const double old_len = rope.original_max_position;
    const double low_wavelen = old_len / rope.low_freq_factor;
    const double high_wavelen = old_len / rope.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= factor;
        continue;
      }
      const double smooth = (old_len / wavelen - rope.low_freq_factor) /
                            (rope.high_freq_factor - rope.low_freq_factor);
      f = (1.0 - smooth) * f / factor + smooth * f;
    }
  }
  return inv;
}

void build_rope_table(const RopeConfig& rope, int head_dim, std::span<const int32_t> positions,
                      RopeTable& table) {
  const std::vector<double> inv = rope_inv_freq(rope, head_dim);
  table.pairs = static_cast<int>(inv.size());
  table.cos.resize(positions.size() * inv.size());
  table.sin.resize(positions.size() * inv.size());
  for (size_t t = 0; t < positions.size(); ++t) {
    for (size_t i = 0; i < inv.size(); ++i) {
      const double angle = positions[t] * inv[i];
      table.cos[t * inv.size() + i] = static_cast<float>(std::cos(angle));
      table.sin[t * inv.size() + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void apply_rope(const RopeTable& table, bool neox, float* x, int64_t num_tokens, int num_heads,
                int head_dim) {
  const int pairs = table.pairs;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = table.cos.data() + t * pairs;
    const float* s = table.sin.data() + t * pairs;
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      if (neox) {
        for (int i = 0; i < pairs; ++i) {
          const float a = v[i], b = v[i + pairs];
          v[i] = a * c[i] - b * s[i];
          v[i + pairs] = a * s[i] + b * c[i];
        }
      } else {
        for (int i = 0; i < pairs; ++i) {
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c[i] - b * s[i];
          v[2 * i + 1] = a * s[i] + b * c[i];
        }
      }
    }
  }
}

namespace {

// One (slot, head) row of head_dim values into an 8-bit pool: scale = amax / qmax, so the
// row's largest magnitude maps to the type's largest value.
void quantize_kv_row(KvDtype dtype, const float* x, int d, uint8_t* q, float* scale) {
  float amax = 0.0f;
  for (int i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float qmax = dtype == KvDtype::kFp8 ? kFp8E4m3Max : 127.0f;
  const float s = amax > 0.0f ? amax / qmax : 1.0f;
  const float inv = 1.0f / s;
  *scale = s;
  for (int i = 0; i < d; ++i) {
    if (dtype == KvDtype::kFp8) {
      q[i] = f32_to_fp8_e4m3(x[i] * inv);
    } else {
      const float r = std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f);
      q[i] = static_cast<uint8_t>(static_cast<int8_t>(r));
    }
  }
}

void store_pool(const PagedKv& kv, void* pool, float* scales, const float* x, int64_t slot) {
  const int d = kv.head_dim;
  const int64_t row = static_cast<int64_t>(kv.num_kv_heads) * d;
  if (kv.dtype == KvDtype::kF32) {
    std::memcpy(static_cast<float*>(pool) + slot * row, x, row * sizeof(float));
    return;
  }
  for (int h = 0; h < kv.num_kv_heads; ++h) {
    const int64_t r = slot * kv.num_kv_heads + h;
    quantize_kv_row(kv.dtype, x + h * d, d, static_cast<uint8_t*>(pool) + r * d, scales + r);
  }
}

}  // namespace

void load_kv_rows(KvDtype dtype, const void* pool, const float* scales, int64_t first_row,
                  int64_t n, int head_dim, float* out) {
  const auto* q = static_cast<const uint8_t*>(pool) + first_row * head_dim;
  for (int64_t r = 0; r < n; ++r) {
    const float s = scales[first_row + r];
    for (int i = 0; i < head_dim; ++i) {
      const uint8_t b = q[r * head_dim + i];
      out[r * head_dim + i] =
          (dtype == KvDtype::kFp8 ? fp8_e4m3_to_f32(b)
                                  : static_cast<float>(static_cast<int8_t>(b))) *
          s;
    }
  }
}

void store_kv(const PagedKv& kv, const float* k, const float* v, std::span<const int32_t> slots) {
  const int64_t row = static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] < 0) continue;
    store_pool(kv, kv.k, kv.k_scale, k + t * row, slots[t]);
    store_pool(kv, kv.v, kv.v_scale, v + t * row, slots[t]);
  }
}

namespace {

constexpr int kMaxKeysPerChunk = 64;

// Online-softmax state for the query heads that share one KV head.
struct GroupState {
  std::vector<float> max, sum, acc, scores;
  std::vector<float> kbuf, vbuf;  // a chunk's K and V rows decoded from an 8-bit cache
  void reset(int group, int head_dim) {
    kbuf.resize(static_cast<size_t>(kMaxKeysPerChunk) * head_dim);
    vbuf.resize(static_cast<size_t>(kMaxKeysPerChunk) * head_dim);
    max.assign(group, -std::numeric_limits<float>::infinity());
    sum.assign(group, 0.0f);
    acc.assign(static_cast<size_t>(group) * head_dim, 0.0f);
    scores.resize(static_cast<size_t>(group) * kMaxKeysPerChunk);
  }
};

// Query row r (at `pos`) of a sequence, KV head kvh: all its heads' outputs.
void attend_one(const PagedKv& kv, const int32_t* block_table, int pos, int first_key,
                const AttentionParams& attn, int kvh, const float* q_row, float* out_row,
                GroupState& st) {
  const int group = attn.num_heads / attn.num_kv_heads;
  const int d = attn.head_dim;
  const int64_t kv_stride = static_cast<int64_t>(kv.num_kv_heads) * d;
  st.reset(group, d);
  const float* q0 = q_row + static_cast<int64_t>(kvh) * group * d;
  int p = first_key;
  while (p <= pos) {
    // A chunk never crosses a block, so its keys are evenly strided in memory.
    const int block_end = (p / kv.block_size + 1) * kv.block_size;
    const int n = std::min({pos + 1, block_end, p + kMaxKeysPerChunk}) - p;
    const int64_t base =
        (static_cast<int64_t>(block_table[p / kv.block_size]) * kv.block_size + p % kv.block_size) *
            kv_stride +
        static_cast<int64_t>(kvh) * d;
    const float* kp = static_cast<const float*>(kv.k) + base;
    const float* vp = static_cast<const float*>(kv.v) + base;
    int64_t key_stride = kv_stride;
    if (kv.dtype != KvDtype::kF32) {
      // The chunk's rows of this head, one per key: rows (slot * heads + kvh) for slots
      // that follow each other, so every row is `heads` rows after the previous one.
      const int64_t row0 = base / d;
      for (int j = 0; j < n; ++j) {
        const int64_t r = row0 + int64_t{j} * kv.num_kv_heads;
        load_kv_rows(kv.dtype, kv.k, kv.k_scale, r, 1, d, st.kbuf.data() + j * d);
        load_kv_rows(kv.dtype, kv.v, kv.v_scale, r, 1, d, st.vbuf.data() + j * d);
      }
      kp = st.kbuf.data();
      vp = st.vbuf.data();
      key_stride = d;
    }
    for (int g = 0; g < group; ++g) {
      float* sc = st.scores.data() + g * kMaxKeysPerChunk;
      float chunk_max = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < n; ++j) {
        sc[j] = dot_f32(q0 + g * d, kp + j * key_stride, d) * attn.scale;
        chunk_max = std::max(chunk_max, sc[j]);
      }
      const float new_max = std::max(st.max[g], chunk_max);
      const float rescale = std::exp(st.max[g] - new_max);  // 0 on the first chunk
      float* acc = st.acc.data() + g * d;
      scale_f32(rescale, acc, d);
      float sum = st.sum[g] * rescale;
      for (int j = 0; j < n; ++j) {
        const float w = std::exp(sc[j] - new_max);
        sum += w;
        axpy_f32(w, vp + j * key_stride, acc, d);
      }
      st.sum[g] = sum;
      st.max[g] = new_max;
    }
    p += n;
  }
  for (int g = 0; g < group; ++g) {
    const float inv = st.sum[g] > 0.0f ? 1.0f / st.sum[g] : 0.0f;
    float* o = out_row + (static_cast<int64_t>(kvh) * group + g) * d;
    const float* acc = st.acc.data() + g * d;
    for (int i = 0; i < d; ++i) o[i] = acc[i] * inv;
  }
}

}  // namespace

void paged_attention(ThreadPool& pool, const PagedKv& kv, const StepLayout& layout,
                     const AttentionParams& attn, const float* q, float* out) {
  const int num_tokens = layout.num_tokens();
  // Row -> sequence map, so work items can be handed out per (row, kv head).
  std::vector<int32_t> seq_of(num_tokens);
  for (int s = 0; s < layout.num_seqs(); ++s) {
    for (int r = layout.query_start[s]; r < layout.query_start[s + 1]; ++r) seq_of[r] = s;
  }
  const int64_t items = static_cast<int64_t>(num_tokens) * attn.num_kv_heads;
  const int tasks = static_cast<int>(std::min<int64_t>(items, pool.size() * 8));
  const int64_t row_elems = static_cast<int64_t>(attn.num_heads) * attn.head_dim;
  pool.run(tasks, [&](int task) {
    thread_local GroupState st;
    const Range range = split_range(items, tasks, task, 1);
    for (int64_t item = range.begin; item < range.end; ++item) {
      const int r = static_cast<int>(item / attn.num_kv_heads);
      const int kvh = static_cast<int>(item % attn.num_kv_heads);
      const int s = seq_of[r];
      const int pos = std::min(layout.positions[r], layout.context_len[s] - 1);
      const int first = attn.sliding_window > 0 ? std::max(0, pos - attn.sliding_window + 1) : 0;
      attend_one(kv, layout.block_tables.data() + layout.block_table_start[s], pos, first, attn,
                 kvh, q + r * row_elems, out + r * row_elems, st);
    }
  });
}

}  // namespace tessera::cpu
