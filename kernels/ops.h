#pragma once
// The backend-neutral op interface. model/ writes the forward pass against it; kernels/cpu
// and kernels/cuda implement it. Nothing here knows about requests: a step is described only
// by its geometry (StepLayout).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/kv_cache.h"
#include "kernels/sampled_logprobs.h"
#include "kernels/weight_scheme.h"

namespace tessera {

// Host view of a weight: row-major [rows, cols], rows = output features; a 1-D tensor
// (norm gamma) has rows = 1. Quantized types are blocked along cols.
struct HostTensor {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;  // borrowed: mmap or loader-owned storage
  // Quantized projections (kernels/weight_scheme.h): the scheme and its side tensors, all
  // borrowed like data. dtype is the storage of data for kDense / kGguf; unused otherwise.
  QuantScheme scheme;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const int32_t* g_idx = nullptr;
};

// A weight as the backend keeps it (it may convert or repack on upload).
struct Weight {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  std::shared_ptr<void> owner;  // keeps backend storage alive; empty when borrowed
  // As in HostTensor, in backend memory (the backend may repack them on upload).
  QuantScheme scheme;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const int32_t* g_idx = nullptr;
  int64_t num_groups = 0;  // scales per row of kInt8 / kInt4 (upload fills it; 0 = unknown)
};

// One forward step: several sequences, each contributing a run of consecutive tokens
// (a prefill chunk or one decode token), in CSR form over sequences. All host memory.
//
//   rows of sequence s:   [query_start[s], query_start[s+1])
//   its cached context:   positions [0, context_len[s]) after this step's K/V are stored
//   its block table:      block_tables[block_table_start[s] .. block_table_start[s+1])
//   token row r goes to:  slot_mapping[r] = block_id * block_size + offset
struct StepLayout {
  std::vector<int32_t> tokens;             // [num_tokens]
  std::vector<int32_t> positions;          // [num_tokens]
  std::vector<int32_t> slot_mapping;       // [num_tokens]
  std::vector<int32_t> query_start;        // [num_seqs + 1]
  std::vector<int32_t> context_len;        // [num_seqs]
  std::vector<int32_t> block_table_start;  // [num_seqs + 1]
  std::vector<int32_t> block_tables;       // concatenated block ids
  std::vector<int32_t> logit_rows;         // rows whose hidden state reaches the LM head
  // Optional, [num_seqs]: a stable key per sequence (the engine's id) across steps, so a
  // backend can keep block tables in its memory and send only what changed.
  std::vector<int64_t> seq_keys;
  // Pipelined steps: (row, i) pairs whose token is the i-th token of the latest
  // Ops::sample_async, still on the device (tokens[row] holds a placeholder until then).
  std::vector<std::pair<int32_t, int32_t>> tokens_from_sample;
  int block_size = 16;

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_seqs() const { return static_cast<int>(context_len.size()); }
};

struct RopeConfig {
  float theta = 10000.0f;
  bool neox = false;   // true: rotate halves (HF layout); false: adjacent pairs (GGUF llama)
  int rotary_dim = 0;  // 0 = head_dim
  // Llama-3 frequency scaling; factor == 0 disables it.
  float scaling_factor = 0.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

// Per-row sampling request for Ops::sample_on_device. temperature <= 0 (or top_k == 1) means
// greedy. The uniform draw is derived from (seed, offset), so a fixed seed replays exactly.
// Penalties, min_p and logprobs follow engine/sampler.h's contract (the host sampler's).
struct SampleSpec {
  float temperature = 1.0f;
  int top_k = 0;       // 0 = whole vocabulary
  float top_p = 1.0f;  // 1 = no nucleus cut
  uint64_t seed = 0;
  uint64_t offset = 0;  // e.g. the number of tokens generated so far
  float min_p = 0.0f;   // 0 = off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // What the penalties look at (host memory, read during the call): the prompt, and the
  // output as `output` + `output_extra` (a draft row's earlier drafts) + the token at
  // `pending_row` of the previous sampling, still on the device (-1: none).
  std::span<const int32_t> prompt;
  std::span<const int32_t> output;
  std::span<const int32_t> output_extra;
  int32_t pending_row = -1;
  int logprobs = -1;  // >= 0: report the raw logprobs (chosen + this many alternatives)

  bool penalized() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
};

struct AttentionParams {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  int sliding_window = 0;  // 0 = full causal attention
};

// What a model asks of a backend, in kernel terms (model/model_needs.h fills it from a model's
// config and weights), so a backend can refuse a model it cannot run before any allocation.
struct ModelNeeds {
  std::string model;  // for messages
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;  // 0 = head_dim
  int sliding_window = 0;
  struct WeightFormat {
    DType dtype = DType::kF32;
    QuantScheme scheme;
    std::string example;  // one tensor stored this way
    int64_t cols = 0;     // its row length
  };
  std::vector<WeightFormat> weight_formats;  // one per distinct (dtype, scheme kind, cols)
};

class Ops {
 public:
  virtual ~Ops() = default;
  virtual std::string name() const = 0;
  // Activations between ops are in this dtype (f32 on CPU, bf16 on CUDA).
  virtual DType activation_dtype() const = 0;
  size_t activation_bytes(int64_t elems) const;
  // The residual stream h carries every layer's sum, so a backend may keep it wider than the
  // other activations (CUDA: f32 residual, bf16 activations) to avoid rounding it per add.
  virtual DType residual_dtype() const { return activation_dtype(); }
  size_t residual_bytes(int64_t elems) const;

  // Backend memory (host RAM on CPU, device memory on CUDA).
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  virtual void to_device(void* dst, const void* src, size_t bytes) = 0;
  // Returns once the copy, and the work issued before it, is done.
  virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() {}
  // Free and total bytes of backend memory, to size the KV cache from a fraction of it.
  // false when the backend cannot tell (the CPU backend: its KV budget is given in bytes).
  virtual bool memory_info(size_t& free_bytes, size_t& total_bytes) {
    (void)free_bytes, (void)total_bytes;
    return false;
  }

  virtual Weight upload(const HostTensor& tensor) = 0;

  // Empty when this backend can run a model with these needs, else why not (naming the
  // model's value and what the backend supports). check_supported throws that as
  // Error(kUnsupported).
  virtual std::string unsupported_reason(const ModelNeeds& needs) const = 0;
  void check_supported(const ModelNeeds& needs) const;

  // Deterministic (batch-invariant) mode: every row's result is bitwise the same whatever
  // the other rows of the step are (the kernel choice, split counts and reduction order
  // depend on the row alone). Set before the model is uploaded.
  virtual void set_deterministic(bool on) { deterministic_ = on; }
  bool deterministic() const { return deterministic_; }
  // GGUF weights kept as their blocks where the backend would otherwise convert them (CUDA:
  // dequantized to bf16 at upload unless this is on). Set before the model is uploaded. The
  // CPU backend always computes on the blocks.
  void set_gguf_blocks(bool on) { gguf_blocks_ = on; }

  // The paged KV cache (kernels/kv_cache.h): the backend creates it, the caller owns it and
  // passes it to the ops below. kAuto resolves to the backend's default (CPU f32, CUDA bf16);
  // a dtype the backend cannot store throws Error(kUnsupported).
  virtual KvDtype resolve_kv_dtype(KvDtype requested) const = 0;
  virtual std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) = 0;
  // Copy-on-write support: copies whole blocks (all layers, K and V, scales).
  virtual void copy_kv_blocks(KvCache& kv,
                              std::span<const std::pair<int32_t, int32_t>> src_dst) = 0;

  // Uploads the step's metadata once; the ops below read it. Must precede them every step.
  // kv is the cache this step's attention reads and writes (block ids index it).
  virtual void begin_step(const StepLayout& layout, KvCache& kv) = 0;

  // out: [T, dim] = table[tokens]; out is a residual buffer, in residual_dtype().
  virtual void embedding(const Weight& table, void* out) = 0;
  // residual: [T, dim]; if x != nullptr, residual += x first; out = rms_norm(residual) * gamma.
  // residual is read and written in residual_dtype(); x and out are in activation_dtype().
  virtual void add_rms_norm(void* residual, const void* x, const Weight& gamma, float eps,
                            void* out) = 0;
  // x: [rows, w.cols] -> out: [rows, w.rows]
  virtual void matmul(const void* x, int rows, const Weight& w, void* out) = 0;
  // q: [T, num_heads, head_dim], k/v: [T, num_kv_heads, head_dim]. Rotates q and k in place
  // at the step's positions, then stores k and v into this layer's pages (slot_mapping).
  // kv must be the cache given to begin_step.
  virtual void rope_store_kv(KvCache& kv, void* q, void* k, const void* v, int layer,
                             const AttentionParams& attn, const RopeConfig& rope) = 0;
  // q: [T, num_heads, head_dim] -> out: [T, num_heads, head_dim]; each token attends causally
  // to its sequence's cached K/V at positions <= its own.
  virtual void paged_attention(const KvCache& kv, const void* q, int layer,
                               const AttentionParams& attn, void* out) = 0;
  // gate, up, out: [T, ffn]; out = silu(gate) * up
  virtual void silu_mul(const void* gate, const void* up, int64_t count, void* out) = 0;

  // Fused projections; the defaults issue the separate ops, a backend overrides them where
  // one launch streams the weights better (decode-sized batches).
  // outs[i] = x ws[i] for every i, as matmul does (ws.size() == outs.size(); all ws share
  // cols). For the Q/K/V projections of one layer.
  virtual void matmul_multi(const void* x, int rows, std::span<const Weight* const> ws,
                            std::span<void* const> outs);
  // out: [rows, gate.rows] = silu(x Wgate) * (x Wup); gate and up have the same shape.
  // scratch: a caller buffer of [rows, up.rows] activations that a backend may use for the
  // up projection (the default does); its contents afterwards are unspecified.
  virtual void gate_up_silu(const void* x, int rows, const Weight& gate, const Weight& up,
                            void* scratch, void* out);
  // x: [T, dim] -> out: [R, dim] with the step's logit_rows
  virtual void gather_logit_rows(const void* x, int dim, void* out) = 0;
  // x: [rows, w.cols] -> logits: [rows, w.rows] in f32 (backend memory)
  virtual void lm_head(const void* x, int rows, const Weight& w, float* logits) = 0;

  // Optional: samples one token per logits row without copying the rows to the host.
  // logits: [rows, vocab] f32 in backend memory; specs and out_tokens have `rows` entries.
  // Returns false when the backend has no device sampler (the caller samples on the host).
  // out_logprobs: `rows` entries when any spec asks for logprobs (else may be empty).
  virtual bool sample_on_device(const float* logits, int rows, int vocab,
                                std::span<const SampleSpec> specs, std::span<int32_t> out_tokens,
                                std::span<SampledLogprobs> out_logprobs) {
    (void)logits, (void)rows, (void)vocab, (void)specs, (void)out_tokens, (void)out_logprobs;
    return false;
  }

  // Optional, for pipelined steps (the host plans step N + 1 while the device runs step N):
  // enqueues the same sampling as sample_on_device and returns at once. Each call's tokens
  // are fetched, oldest first, by collect_sampled, which waits for them; the next step can
  // read them before that through StepLayout::tokens_from_sample. Returns false when the
  // backend cannot (the caller samples synchronously).
  virtual bool sample_async(const float* logits, int rows, int vocab,
                            std::span<const SampleSpec> specs) {
    (void)logits, (void)rows, (void)vocab, (void)specs;
    return false;
  }
  virtual void collect_sampled(std::span<int32_t> out_tokens,
                               std::span<SampledLogprobs> out_logprobs);

  // Ends the step begun by begin_step (after its last op, sampling included), so a backend
  // can time it: device_timeline() sums, over completed steps, the time the device ran
  // them and the gaps between one step's end and the next one's start (the device waiting
  // for the host). Defaults: no timing.
  struct DeviceTimeline {
    double busy_seconds = 0.0;
    double idle_seconds = 0.0;
    int64_t steps = 0;
  };
  virtual void end_step() {}
  virtual DeviceTimeline device_timeline() { return {}; }

  // Optional graph hooks (CUDA graphs for decode steps). The ops issued after begin_step
  // between graph_capture_begin(key) and graph_capture_end() are recorded; graph_replay(key)
  // re-issues them and returns false when no graph for `key` matches the current step's
  // geometry (then the caller runs the ops normally, or captures). Defaults: no graphs.
  // graph_capture_end returns true when the graph was made and has run the step once;
  // false when the capture failed: nothing ran, the backend is usable again and will not
  // capture this step size again, and the caller runs the step's ops eagerly. An op that
  // throws during capture leaves it open: the caller calls graph_capture_abort (same
  // outcome as a failed end) and may run the step eagerly.
  virtual bool graph_replay(uint64_t key) {
    (void)key;
    return false;
  }
  virtual bool graph_capture_begin(uint64_t key) {
    (void)key;
    return false;
  }
  virtual bool graph_capture_end() { return true; }
  virtual void graph_capture_abort() {}

  // Tensor parallelism: one rank per GPU (kernels/cuda, over NCCL). Rank 0 makes the id and
  // sends it to the other ranks; every rank joins with it before loading its shard. The
  // defaults serve one rank only (the CPU backend).
  virtual std::string make_collective_id();
  virtual void join_collectives(const std::string& id, int rank, int world);
  // From any thread: collectives waiting on a dead rank return (with an error) instead of
  // hanging; the backend's collectives are unusable afterwards.
  virtual void abort_collectives() {}
  // buf: [count] in activation_dtype(), replaced by its sum over the ranks (graph-capturable).
  virtual void all_reduce_sum(void* buf, int64_t count);

 protected:
  bool deterministic_ = false;
  bool gguf_blocks_ = false;
};

// Backend factories. make_cuda_ops throws when CUDA was not compiled in or no GPU exists.
std::unique_ptr<Ops> make_cpu_ops(int num_threads);  // 0 = all cores
std::unique_ptr<Ops> make_cuda_ops(int device);
bool cuda_available();

}  // namespace tessera
