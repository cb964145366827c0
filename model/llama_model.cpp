// Llama-family forward pass over Ops. Per layer:
//   xn = rms_norm(h += mlp_out_prev)         (fused residual add)
//   q, k, v = xn Wq, xn Wk, xn Wv;  rope(q, k); store k, v in the paged cache
//   a = attention(q, cache) Wo
//   xn = rms_norm(h += a);  m = (silu(xn Wgate) * xn Wup) Wdown
// and after the last layer: logits = rms_norm(h += m)[logit_rows] Wout (Wout = the token
// embedding when the model ties them).
#include "model/llama_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace tessera {
namespace {

// Backend buffer that frees itself.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }
  void resize(Ops& ops, size_t bytes) {
    if (bytes <= bytes_) return;
    reset();
    ops_ = &ops;
    ptr_ = ops.alloc(bytes);
    bytes_ = bytes;
  }
  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }

 private:
  void reset() {
    if (ptr_ != nullptr) ops_->free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  Ops* ops_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

void check_shape(const std::string& name, const HostTensor& t, int64_t rows, int64_t cols) {
  if (t.rows != rows || t.cols != cols) {
    throw Error(ErrorKind::kCorruptFile,
                "tensor '" + name + "' has shape [" + std::to_string(t.rows) + ", " +
                    std::to_string(t.cols) + "], expected [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "]");
  }
}

}  // namespace

struct LlamaModel::Impl {
  struct Layer {
    Weight attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
  };
  Weight embed, output_norm, output;
  std::vector<Layer> layers;
  bool kv_ready = false;
  int block_size = 0;

  // Activations, sized for the largest step seen so far.
  Buffer h, xn, q, k, v, attn, proj, gate, up, last, logits;
};

LlamaModel::LlamaModel(const ModelConfig& config, const WeightSet& weights, Ops& ops,
                       const LayerProgress& on_layer)
    : config_(config), ops_(ops), impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = config_;
  if (c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 ||
      c.head_dim <= 0 || c.vocab_size <= 0 || c.intermediate_size <= 0 ||
      c.num_heads % c.num_kv_heads != 0) {
    throw Error(ErrorKind::kInvalidArgument, "model config has inconsistent shapes");
  }
  const int64_t dim = c.hidden_size, qdim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kvdim = int64_t{c.num_kv_heads} * c.head_dim, ffn = c.intermediate_size;
  auto load = [&](const std::string& name, int64_t rows, int64_t cols) {
    const HostTensor& t = weights.get(name);
    check_shape(name, t, rows, cols);
    return ops_.upload(t);
  };
  impl_->embed = load("token_embd.weight", c.vocab_size, dim);
  impl_->output_norm = load("output_norm.weight", 1, dim);
  // A model ties its LM head to the embedding when it ships no output.weight.
  impl_->output =
      weights.has("output.weight") ? load("output.weight", c.vocab_size, dim) : impl_->embed;
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    Impl::Layer L;
    L.attn_norm = load(p + "attn_norm.weight", 1, dim);
    L.wq = load(p + "attn_q.weight", qdim, dim);
    L.wk = load(p + "attn_k.weight", kvdim, dim);
    L.wv = load(p + "attn_v.weight", kvdim, dim);
    L.wo = load(p + "attn_output.weight", dim, qdim);
    L.ffn_norm = load(p + "ffn_norm.weight", 1, dim);
    L.gate = load(p + "ffn_gate.weight", ffn, dim);
    L.up = load(p + "ffn_up.weight", ffn, dim);
    L.down = load(p + "ffn_down.weight", dim, ffn);
    impl_->layers.push_back(std::move(L));
    if (on_layer) on_layer(i + 1, c.num_layers);
  }
}

LlamaModel::~LlamaModel() = default;

void LlamaModel::init_kv_cache(int num_blocks, int block_size) {
  KvCacheShape shape;
  shape.num_layers = config_.num_layers;
  shape.num_blocks = num_blocks;
  shape.block_size = block_size;
  shape.num_kv_heads = config_.num_kv_heads;
  shape.head_dim = config_.head_dim;
  shape.num_heads = config_.num_heads;  // lets a backend plan attention in begin_step
  ops_.init_kv_cache(shape);
  impl_->kv_ready = true;
  impl_->block_size = block_size;
}

size_t LlamaModel::kv_bytes_per_token() const {
  return size_t{2} * config_.num_layers * config_.num_kv_heads * config_.head_dim *
         dtype_row_bytes(ops_.kv_dtype(), 1);
}

const float* LlamaModel::forward_on_device(const StepLayout& layout) {
  if (!impl_->kv_ready) throw Error(ErrorKind::kInternal, "forward before init_kv_cache");
  const ModelConfig& c = config_;
  Impl& m = *impl_;
  const int t = layout.num_tokens();
  const int num_logits = static_cast<int>(layout.logit_rows.size());
  const int64_t dim = c.hidden_size, qdim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kvdim = int64_t{c.num_kv_heads} * c.head_dim, ffn = c.intermediate_size;
  auto bytes = [&](int64_t elems) { return ops_.activation_bytes(elems); };
  m.h.resize(ops_, ops_.residual_bytes(t * dim));
  m.xn.resize(ops_, bytes(t * dim));
  m.q.resize(ops_, bytes(t * qdim));
  m.k.resize(ops_, bytes(t * kvdim));
  m.v.resize(ops_, bytes(t * kvdim));
  m.attn.resize(ops_, bytes(t * qdim));
  m.proj.resize(ops_, bytes(t * dim));
  m.gate.resize(ops_, bytes(t * ffn));
  m.up.resize(ops_, bytes(t * ffn));
  m.last.resize(ops_, bytes(std::max(1, num_logits) * dim));
  m.logits.resize(ops_, sizeof(float) * std::max(1, num_logits) * c.vocab_size);

  ops_.begin_step(layout);

  // Decode-only steps run from a CUDA graph keyed by batch size and buffer addresses (a new
  // address means a new graph); backends without graphs return false and run the ops below.
  const bool decode_only = t == layout.num_seqs() && num_logits == t;
  uint64_t key = static_cast<uint64_t>(t);
  for (const Buffer* b :
       {&m.h, &m.xn, &m.q, &m.k, &m.v, &m.attn, &m.proj, &m.gate, &m.up, &m.last, &m.logits}) {
    key = key * 1000003u ^ reinterpret_cast<uintptr_t>(b->get());
  }
  const bool replayed = decode_only && ops_.graph_replay(key);
  const bool capturing = decode_only && !replayed && ops_.graph_capture_begin(key);
  if (!replayed) run_step(layout, capturing);
  return num_logits == 0 ? nullptr : m.logits.f32();
}

void LlamaModel::forward(const StepLayout& layout, std::vector<float>& logits) {
  const float* device_logits = forward_on_device(layout);
  logits.resize(layout.logit_rows.size() * static_cast<size_t>(config_.vocab_size));
  if (device_logits == nullptr) return;
  ops_.synchronize();
  ops_.to_host(logits.data(), device_logits, logits.size() * sizeof(float));
}

// The step's ops after begin_step (graph-capturable: no host synchronization inside).
void LlamaModel::run_step(const StepLayout& layout, bool capturing) {
  const ModelConfig& c = config_;
  Impl& m = *impl_;
  const int t = layout.num_tokens();
  const int num_logits = static_cast<int>(layout.logit_rows.size());
  AttentionParams attn;
  attn.num_heads = c.num_heads;
  attn.num_kv_heads = c.num_kv_heads;
  attn.head_dim = c.head_dim;
  attn.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  attn.sliding_window = c.sliding_window;

  ops_.embedding(m.embed, m.h.get());
  const void* pending = nullptr;  // last sub-block's output, not yet added to the residual
  for (int i = 0; i < c.num_layers; ++i) {
    const Impl::Layer& L = m.layers[i];
    ops_.add_rms_norm(m.h.get(), pending, L.attn_norm, c.rms_norm_eps, m.xn.get());
    const Weight* qkv[] = {&L.wq, &L.wk, &L.wv};
    void* const qkv_out[] = {m.q.get(), m.k.get(), m.v.get()};
    ops_.matmul_multi(m.xn.get(), t, qkv, qkv_out);
    ops_.rope_store_kv(m.q.get(), m.k.get(), m.v.get(), i, attn, c.rope);
    ops_.paged_attention(m.q.get(), i, attn, m.attn.get());
    ops_.matmul(m.attn.get(), t, L.wo, m.proj.get());
    ops_.add_rms_norm(m.h.get(), m.proj.get(), L.ffn_norm, c.rms_norm_eps, m.xn.get());
    ops_.gate_up_silu(m.xn.get(), t, L.gate, L.up, m.up.get(), m.gate.get());
    ops_.matmul(m.gate.get(), t, L.down, m.proj.get());
    pending = m.proj.get();
  }
  ops_.add_rms_norm(m.h.get(), pending, m.output_norm, c.rms_norm_eps, m.xn.get());
  if (num_logits > 0) {
    ops_.gather_logit_rows(m.xn.get(), c.hidden_size, m.last.get());
    ops_.lm_head(m.last.get(), num_logits, m.output, m.logits.f32());
  }
  if (capturing) ops_.graph_capture_end();  // records the step, then runs it once
}

}  // namespace tessera
