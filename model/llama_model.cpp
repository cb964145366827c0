// Llama-family forward pass over Ops. Per layer:
//   xn = rms_norm(h += mlp_out_prev)         (fused residual add)
//   q, k, v = xn Wq, xn Wk, xn Wv;  rope(q, k); store k, v in the paged cache
//   a = attention(q, cache) Wo
//   xn = rms_norm(h += a);  m = (silu(xn Wgate) * xn Wup) Wdown
// and after the last layer: logits = rms_norm(h += m)[logit_rows] Wout (Wout = the token
// embedding when the model ties them).
#include "model/llama_model.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "model/llama_layers.h"

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

}  // namespace

struct LlamaModel::Impl {
  Embedding embed;
  std::vector<DecoderLayer> layers;
  RmsNorm output_norm;
  Linear output;
  std::unique_ptr<KvCache> kv;
  bool has_lm_head = true;
  std::vector<std::shared_ptr<void>> slices;  // host copies of column slices (borrowed by CPU)

  // Activations, sized for the largest step seen so far.
  Buffer h, xn, q, k, v, attn, proj, gate, up, last, logits;
};

LlamaModel::LlamaModel(const ModelConfig& config, const WeightSet& weights, Ops& ops,
                       const LayerProgress& on_layer, const TpShard* shard)
    : config_(shard != nullptr ? shard_config(config, *shard) : config),
      ops_(ops),
      impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = config;  // the whole model's shapes: the files hold them
  if (c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 ||
      c.head_dim <= 0 || c.vocab_size <= 0 || c.intermediate_size <= 0 ||
      c.num_heads % c.num_kv_heads != 0) {
    throw Error(ErrorKind::kInvalidArgument, "model config has inconsistent shapes");
  }
  const int64_t dim = c.hidden_size;
  Impl& m = *impl_;
  m.embed.table = load_weight(ops_, weights, "token_embd.weight", c.vocab_size, dim);
  m.output_norm = {load_weight(ops_, weights, "output_norm.weight", 1, dim), c.rms_norm_eps};
  // A model ties its LM head to the embedding when it ships no output.weight.
  m.has_lm_head = shard == nullptr || shard->rank == 0;
  if (m.has_lm_head)
    m.output = Linear(weights.has("output.weight")
                          ? load_weight(ops_, weights, "output.weight", c.vocab_size, dim)
                          : m.embed.table);
  m.layers.reserve(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    m.layers.push_back(load_decoder_layer(ops_, weights, c, i, shard, &m.slices));
    if (on_layer) on_layer(i + 1, c.num_layers);
  }
}

LlamaModel::~LlamaModel() = default;

void LlamaModel::init_kv_cache(int num_blocks, int block_size, KvDtype dtype, int max_seq_len) {
  KvCacheShape shape;
  shape.num_layers = config_.num_layers;
  shape.num_blocks = num_blocks;
  shape.block_size = block_size;
  shape.num_kv_heads = config_.num_kv_heads;
  shape.head_dim = config_.head_dim;
  shape.num_heads = config_.num_heads;  // lets a backend plan attention in begin_step
  shape.dtype = dtype;
  shape.max_seq_len = max_seq_len;
  impl_->kv.reset();  // free the old pools before the new ones are allocated
  impl_->kv = ops_.make_kv_cache(shape);
}

KvCache& LlamaModel::kv_cache() {
  if (!impl_->kv) throw Error(ErrorKind::kInternal, "KV cache used before init_kv_cache");
  return *impl_->kv;
}

void LlamaModel::copy_kv_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) {
  ops_.copy_kv_blocks(kv_cache(), src_dst);
}

size_t LlamaModel::kv_bytes_per_token(KvDtype dtype) const {
  if (dtype == KvDtype::kAuto && impl_->kv) return impl_->kv->bytes_per_token();
  return tessera::kv_bytes_per_token(config_.num_layers, config_.num_kv_heads, config_.head_dim,
                                     ops_.resolve_kv_dtype(dtype));
}

const float* LlamaModel::forward_on_device(const StepLayout& layout, int num_layers) {
  KvCache& kv = kv_cache();
  const ModelConfig& c = config_;
  Impl& m = *impl_;
  const int t = layout.num_tokens();
  const int num_logits = static_cast<int>(layout.logit_rows.size());
  if (num_layers <= 0 || num_layers > c.num_layers) num_layers = c.num_layers;
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

  ops_.begin_step(layout, kv);

  // Decode steps, and verification steps with one draft length (every sequence the same
  // rows, all yielding logits), run from a CUDA graph keyed by tokens, layers, buffer
  // addresses and the KV cache (a new address means a new graph); backends without graphs
  // return false and run the ops below.
  const int n = layout.num_seqs();
  bool decode_only = n > 0 && num_logits == t && t % n == 0 && t / n <= layout.block_size;
  for (int i = 0; decode_only && i < n; ++i)
    decode_only = layout.query_start[i + 1] - layout.query_start[i] == t / n;
  uint64_t key = static_cast<uint64_t>(t) * 1000003u + static_cast<uint64_t>(num_layers);
  for (const Buffer* b :
       {&m.h, &m.xn, &m.q, &m.k, &m.v, &m.attn, &m.proj, &m.gate, &m.up, &m.last, &m.logits}) {
    key = key * 1000003u ^ reinterpret_cast<uintptr_t>(b->get());
  }
  key = key * 1000003u ^ reinterpret_cast<uintptr_t>(&kv);
  const bool replayed = decode_only && ops_.graph_replay(key);
  const bool capturing = decode_only && !replayed && ops_.graph_capture_begin(key);
  if (capturing) {
    // A failed capture must not wedge the backend: the backend closes it and stops capturing
    // this step size, and the step runs eagerly (an op that fails eagerly too still throws).
    bool captured = false;
    try {
      run_step(layout, num_layers);
      captured = ops_.graph_capture_end();  // records the step, then runs it once
    } catch (const std::exception&) {
      ops_.graph_capture_abort();
    }
    if (!captured) run_step(layout, num_layers);
  } else if (!replayed) {
    run_step(layout, num_layers);
  }
  return num_logits == 0 || !m.has_lm_head ? nullptr : m.logits.f32();
}

void LlamaModel::forward(const StepLayout& layout, std::vector<float>& logits) {
  const float* device_logits = forward_on_device(layout);
  logits.resize(layout.logit_rows.size() * static_cast<size_t>(config_.vocab_size));
  if (device_logits == nullptr) return;
  ops_.synchronize();
  ops_.to_host(logits.data(), device_logits, logits.size() * sizeof(float));
}

// The step's ops after begin_step (graph-capturable: no host synchronization inside).
void LlamaModel::run_step(const StepLayout& layout, int num_layers) {
  Impl& m = *impl_;
  KvCache& kv = *m.kv;
  const int t = layout.num_tokens();
  const int num_logits = static_cast<int>(layout.logit_rows.size());
  const LayerScratch scratch{m.q.get(),    m.k.get(),    m.v.get(),
                             m.attn.get(), m.gate.get(), m.up.get()};

  m.embed.forward(ops_, m.h.get());
  const void* pending = nullptr;  // last sub-block's output, not yet added to the residual
  for (size_t i = 0; i < static_cast<size_t>(num_layers); ++i) {
    const DecoderLayer& L = m.layers[i];
    L.attn_norm.forward(ops_, m.h.get(), pending, m.xn.get());
    L.attn.forward(ops_, kv, static_cast<int>(i), m.xn.get(), t, scratch, m.proj.get());
    L.ffn_norm.forward(ops_, m.h.get(), m.proj.get(), m.xn.get());
    L.mlp.forward(ops_, m.xn.get(), t, scratch, m.proj.get());
    pending = m.proj.get();
  }
  m.output_norm.forward(ops_, m.h.get(), pending, m.xn.get());
  if (num_logits > 0 && m.has_lm_head) {
    ops_.gather_logit_rows(m.xn.get(), config_.hidden_size, m.last.get());
    m.output.forward_logits(ops_, m.last.get(), num_logits, m.logits.f32());
  }
}

}  // namespace tessera
