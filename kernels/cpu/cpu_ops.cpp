// The CPU backend: f32 activations, weights used in place in their stored type (quantized
// groups decoded on the fly), paged KV caches it creates for its callers, and one persistent
// thread pool.
//
// KV dtype: f32 by default. On this model the cache is small next to the weights, and f32
// keeps the attention exact (no rounding of K/V), which the golden test relies on. fp8 and
// int8 caches (per-row scales) are the readable reference for the CUDA ones.
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blocks.h"
#include "kernels/cpu/cpu_kv_cache.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/model_support.h"
#include "kernels/cpu/step_check.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/ops.h"
#include "kernels/scheme_ref.h"

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
    if (t.scheme.quantized() && t.scheme.kind != QuantKind::kGguf) return upload_scheme(t);
    if (t.cols % dtype_block_elems(t.dtype) != 0) {
      throw Error(ErrorKind::kInvalidArgument,
                  std::string("tensor of type ") + dtype_name(t.dtype) + " has " +
                      std::to_string(t.cols) + " columns, not a multiple of its block");
    }
    Weight w;
    w.dtype = t.dtype;
    w.rows = t.rows;
    w.cols = t.cols;
    w.data = t.data;
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

  std::string unsupported_reason(const ModelNeeds& needs) const override {
    return cpu::unsupported_reason(needs);
  }

  KvDtype resolve_kv_dtype(KvDtype requested) const override {
    switch (requested) {
      case KvDtype::kAuto:
      case KvDtype::kF32:
        return KvDtype::kF32;
      case KvDtype::kFp8:
      case KvDtype::kInt8:
        return requested;
      default:
        throw Error(ErrorKind::kUnsupported, std::string("the CPU backend has no ") +
                                                 kv_dtype_name(requested) +
                                                 " KV cache (f32, fp8, int8)");
    }
  }

  std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) override {
    KvCacheShape s = shape;
    s.dtype = resolve_kv_dtype(shape.dtype);
    return std::make_unique<cpu::CpuKvCache>(*this, s);
  }

  void copy_kv_blocks(KvCache& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    mine(kv).copy_blocks(src_dst);
  }

  void begin_step(const StepLayout& layout, KvCache& kv) override {
    mine(kv);
    cpu::check_step_layout(layout, kv.shape().num_blocks, kv.shape().block_size);
    if (!layout.tokens_from_sample.empty())  // no sample_async here: the caller has the tokens
      throw Error(ErrorKind::kInvalidArgument, "begin_step: the CPU backend feeds no tokens");
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
    if (is_scheme(w)) return matmul_scheme(x, rows, w, f32(out));
    cpu::matmul(pool_, {f32(x), rows, w.dtype, w.data, w.rows, w.cols, f32(out), deterministic_});
  }

  void rope_store_kv(KvCache& kv, void* q, void* k, const void* v, int layer,
                     const AttentionParams& attn, const RopeConfig& rope) override {
    if (!rope_valid_ || !same_rope(rope, rope_cfg_) || rope_dim_ != attn.head_dim) {
      cpu::build_rope_table(rope, attn.head_dim, layout_.positions, rope_table_);
      rope_cfg_ = rope;
      rope_dim_ = attn.head_dim;
      rope_valid_ = true;
    }
    const int64_t t = layout_.num_tokens();
    cpu::apply_rope(rope_table_, rope.neox, f32(q), t, attn.num_heads, attn.head_dim);
    cpu::apply_rope(rope_table_, rope.neox, f32(k), t, attn.num_kv_heads, attn.head_dim);
    cpu::store_kv(mine(kv).layer(layer, attn), f32(k), f32(v), layout_.slot_mapping);
  }

  void paged_attention(const KvCache& kv, const void* q, int layer, const AttentionParams& attn,
                       void* out) override {
    cpu::paged_attention(pool_, mine(kv).layer(layer, attn), layout_, attn, f32(q), f32(out));
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
    if (is_scheme(w)) return matmul_scheme(x, rows, w, logits);
    cpu::matmul(pool_, {f32(x), rows, w.dtype, w.data, w.rows, w.cols, logits, deterministic_});
  }

 private:
  static bool is_scheme(const Weight& w) {
    return w.scheme.quantized() && w.scheme.kind != QuantKind::kGguf;
  }
  // fp8 / int8 / int4 weights are kept as stored and decoded panel by panel (scheme_ref.h).
  Weight upload_scheme(const HostTensor& t) {
    const SchemeView v = scheme_view(t);  // validates the side tensors
    Weight w;
    w.dtype = t.dtype;
    w.rows = t.rows;
    w.cols = t.cols;
    w.data = t.data;
    w.scheme = t.scheme;
    w.scales = t.scales;
    w.zeros = t.zeros;
    w.g_idx = v.g_idx;
    w.num_groups = v.num_groups;
    return w;
  }
  void matmul_scheme(const void* x, int rows, const Weight& w, float* out) {
    const SchemeView v = scheme_view(w);
    cpu::matmul_decoded(
        pool_, f32(x), rows, w.rows, w.cols,
        [&v](int64_t r0, int64_t n, float* dst) { dequantize_scheme_rows(v, r0, n, dst); }, out);
  }
  const cpu::CpuKvCache& mine(const KvCache& kv) const {
    if (&kv.owner() != this) {
      throw Error(ErrorKind::kInvalidArgument, "KV cache was made by another backend");
    }
    return static_cast<const cpu::CpuKvCache&>(kv);
  }
  cpu::CpuKvCache& mine(KvCache& kv) const {
    return const_cast<cpu::CpuKvCache&>(mine(static_cast<const KvCache&>(kv)));
  }
  static bool same_rope(const RopeConfig& a, const RopeConfig& b) {
    return a.theta == b.theta && a.rotary_dim == b.rotary_dim &&
           a.scaling_factor == b.scaling_factor && a.low_freq_factor == b.low_freq_factor &&
           a.high_freq_factor == b.high_freq_factor &&
           a.original_max_position == b.original_max_position;
  }

  ThreadPool pool_;
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
