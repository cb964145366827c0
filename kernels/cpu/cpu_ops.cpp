// The CPU backend: f32 activations, weights used in place in their stored type (quantized
// groups decoded on the fly), an f32 paged KV cache, and one persistent thread pool.
//
// KV dtype: f32. On this model the cache is small next to the weights, and f32 keeps the
// attention exact (no rounding of K/V), which the golden test relies on.
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blocks.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/step_check.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/ops.h"

namespace tessera {
namespace {

using cpu::ThreadPool;

const float* f32(const void* p) {
  return static_cast<const float*>(p);
}
float* f32(void* p) {
  return static_cast<float*>(p);
}

class CpuOps final : public Ops {
 public:
  explicit CpuOps(int num_threads) : pool_(num_threads) {}

  std::string name() const override { return "cpu (" + std::to_string(pool_.size()) + " threads)"; }
  DType activation_dtype() const override { return DType::kF32; }

  void* alloc(size_t bytes) override {
    constexpr size_t kAlign = 64;
    void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign + kAlign);
    if (p == nullptr) {
      throw Error(ErrorKind::kResourceExhausted,
                  "cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    }
    return p;
  }
  void free(void* ptr) override { std::free(ptr); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }

  Weight upload(const HostTensor& t) override {
    if (t.data == nullptr || t.rows <= 0 || t.cols <= 0) {
      throw Error(ErrorKind::kInvalidArgument, "cannot upload an empty tensor");
    }
    if (t.cols % dtype_block_elems(t.dtype) != 0) {
      throw Error(ErrorKind::kInvalidArgument,
                  std::string("tensor of type ") + dtype_name(t.dtype) + " has " +
                      std::to_string(t.cols) + " columns, not a multiple of its block");
    }
    if (t.scheme.quantized() && t.scheme.kind != QuantKind::kGguf) {
      throw Error(ErrorKind::kUnsupported, std::string("CPU backend: no kernel for ") +
                                               quant_kind_name(t.scheme.kind) + " weights");
    }
    Weight w{t.dtype, t.rows, t.cols, t.data, {}, t.scheme, t.scales, t.zeros, t.g_idx};
    if (t.rows == 1 && t.dtype != DType::kF32) {
      // Vectors (norm weights) are read element by element: keep them as f32.
      auto buf = std::shared_ptr<float[]>(new float[t.cols]);
      cpu::dequantize_row(t.dtype, t.data, t.cols, buf.get());
      w.dtype = DType::kF32;
      w.data = buf.get();
      w.owner = buf;
    }
    return w;
  }

  void init_kv_cache(const KvCacheShape& shape) override {
    if (shape.num_layers <= 0 || shape.num_blocks <= 1 || shape.block_size <= 0 ||
        shape.num_kv_heads <= 0 || shape.head_dim <= 0) {
      throw Error(ErrorKind::kInvalidArgument, "invalid KV cache shape");
    }
    kv_shape_ = shape;
    kv_shape_.dtype = DType::kF32;
    const size_t per_layer = layer_elems();
    kv_.assign(per_layer * 2 * shape.num_layers, 0.0f);
  }
  DType kv_dtype() const override { return DType::kF32; }

  void copy_kv_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    const size_t block = block_elems();
    for (const auto& [src, dst] : src_dst) {
      check_block(src);
      check_block(dst);
      for (int l = 0; l < 2 * kv_shape_.num_layers; ++l) {
        float* base = kv_.data() + l * layer_elems();
        std::memcpy(base + dst * block, base + src * block, block * sizeof(float));
      }
    }
  }

  void begin_step(const StepLayout& layout) override {
    if (kv_.empty()) throw Error(ErrorKind::kInternal, "begin_step before init_kv_cache");
    cpu::check_step_layout(layout, kv_shape_.num_blocks, kv_shape_.block_size);
    layout_ = layout;
    rope_valid_ = false;
  }

  void embedding(const Weight& table, void* out) override {
    cpu::embedding(pool_, table.dtype, table.data, table.rows, table.cols, layout_.tokens,
                   f32(out));
  }

  void add_rms_norm(void* residual, const void* x, const Weight& gamma, float eps,
                    void* out) override {
    cpu::add_rms_norm(pool_, f32(residual), f32(x), f32(gamma.data), layout_.num_tokens(),
                      gamma.cols, eps, f32(out));
  }

  void matmul(const void* x, int rows, const Weight& w, void* out) override {
    cpu::matmul(pool_, {f32(x), rows, w.dtype, w.data, w.rows, w.cols, f32(out)});
  }

  void rope_store_kv(void* q, void* k, const void* v, int layer, const AttentionParams& attn,
                     const RopeConfig& rope) override {
    if (!rope_valid_ || !same_rope(rope, rope_cfg_) || rope_dim_ != attn.head_dim) {
      cpu::build_rope_table(rope, attn.head_dim, layout_.positions, rope_table_);
      rope_cfg_ = rope;
      rope_dim_ = attn.head_dim;
      rope_valid_ = true;
    }
    const int64_t t = layout_.num_tokens();
    cpu::apply_rope(rope_table_, rope.neox, f32(q), t, attn.num_heads, attn.head_dim);
    cpu::apply_rope(rope_table_, rope.neox, f32(k), t, attn.num_kv_heads, attn.head_dim);
    cpu::store_kv(paged(layer, attn), f32(k), f32(v), layout_.slot_mapping);
  }

  void paged_attention(const void* q, int layer, const AttentionParams& attn, void* out) override {
    cpu::paged_attention(pool_, paged(layer, attn), layout_, attn, f32(q), f32(out));
  }

  void silu_mul(const void* gate, const void* up, int64_t count, void* out) override {
    cpu::silu_mul(pool_, f32(gate), f32(up), count, f32(out));
  }

  void gather_logit_rows(const void* x, int dim, void* out) override {
    for (size_t i = 0; i < layout_.logit_rows.size(); ++i) {
      std::memcpy(f32(out) + i * dim, f32(x) + static_cast<int64_t>(layout_.logit_rows[i]) * dim,
                  dim * sizeof(float));
    }
  }

  void lm_head(const void* x, int rows, const Weight& w, float* logits) override {
    cpu::matmul(pool_, {f32(x), rows, w.dtype, w.data, w.rows, w.cols, logits});
  }

 private:
  size_t block_elems() const {
    return static_cast<size_t>(kv_shape_.block_size) * kv_shape_.num_kv_heads * kv_shape_.head_dim;
  }
  size_t layer_elems() const { return block_elems() * kv_shape_.num_blocks; }
  void check_block(int32_t b) const {
    if (b < 0 || b >= kv_shape_.num_blocks) {
      throw Error(ErrorKind::kInvalidArgument, "KV block id " + std::to_string(b) +
                                                   " is outside the pool of " +
                                                   std::to_string(kv_shape_.num_blocks));
    }
  }
  cpu::PagedKv paged(int layer, const AttentionParams& attn) {
    if (layer < 0 || layer >= kv_shape_.num_layers || attn.num_kv_heads != kv_shape_.num_kv_heads ||
        attn.head_dim != kv_shape_.head_dim || attn.num_heads % attn.num_kv_heads != 0) {
      throw Error(ErrorKind::kInvalidArgument,
                  "attention layer/heads do not match the KV cache shape");
    }
    float* base = kv_.data() + 2 * layer * layer_elems();
    return {base, base + layer_elems(), kv_shape_.block_size, kv_shape_.num_kv_heads,
            kv_shape_.head_dim};
  }
  static bool same_rope(const RopeConfig& a, const RopeConfig& b) {
    return a.theta == b.theta && a.rotary_dim == b.rotary_dim &&
           a.scaling_factor == b.scaling_factor && a.low_freq_factor == b.low_freq_factor &&
           a.high_freq_factor == b.high_freq_factor &&
           a.original_max_position == b.original_max_position;
  }

  ThreadPool pool_;
  KvCacheShape kv_shape_;
  std::vector<float> kv_;  // per layer: K pool then V pool
  StepLayout layout_;
  cpu::RopeTable rope_table_;
  RopeConfig rope_cfg_;
  int rope_dim_ = 0;
  bool rope_valid_ = false;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(int num_threads) {
  if (num_threads < 0) {
    throw Error(ErrorKind::kInvalidArgument, "--threads must be >= 0 (0 = all cores)");
  }
  return std::make_unique<CpuOps>(num_threads);
}

}  // namespace tessera
