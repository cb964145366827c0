#pragma once
// The CUDA backend behind kernels/ops.h. bf16 activations, an f32 residual stream, fp32
// accumulation; weights are kept as bf16 matrices, GGUF blocks, or in a quantization scheme
// (kernels/weight_scheme.h; cuda_ops_quant.cpp), and vectors as f32.
// All work is issued on one stream; to_host / synchronize wait for it. Not thread-safe: use
// one instance from one thread (it binds its device on construction and in begin_step).
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/block_table_mirror.h"
#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/cuda_kv_cache.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/quant.h"
#include "kernels/cuda/sampling.h"
#include "kernels/ops.h"

namespace tessera::cuda {

class NcclComm;

// A device buffer that grows; growth changes the pointer (and so invalidates graphs).
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  bool reserve(size_t need);  // true when it reallocated
  ~DeviceBuffer();
};

struct PinnedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  void reserve(size_t need);
  ~PinnedBuffer();
};

class CudaOps final : public Ops {
 public:
  explicit CudaOps(int device);
  ~CudaOps() override;

  std::string name() const override { return "cuda"; }
  DType activation_dtype() const override { return DType::kBF16; }
  // f32: a bf16 residual rounded after every add drifts from the CPU backend over the layers.
  DType residual_dtype() const override { return DType::kF32; }

  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;
  bool memory_info(size_t& free_bytes, size_t& total_bytes) override;

  Weight upload(const HostTensor& tensor) override;
  std::string unsupported_reason(const ModelNeeds& needs) const override;

  // bf16 by default; fp16 on request (fp8 / int8: see kernels/kv_cache.h).
  KvDtype resolve_kv_dtype(KvDtype requested) const override;
  std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) override;
  void copy_kv_blocks(KvCache& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) override;

  void begin_step(const StepLayout& layout, KvCache& kv) override;
  void embedding(const Weight& table, void* out) override;
  void add_rms_norm(void* residual, const void* x, const Weight& gamma, float eps,
                    void* out) override;
  void matmul(const void* x, int rows, const Weight& w, void* out) override;
  // Decode-sized batches (rows up to the cutoffs in gemv.h) take one grouped or fused GEMV
  // launch; anything else falls back to the separate ops (cuBLASLt).
  void matmul_multi(const void* x, int rows, std::span<const Weight* const> ws,
                    std::span<void* const> outs) override;
  void gate_up_silu(const void* x, int rows, const Weight& gate, const Weight& up, void* scratch,
                    void* out) override;
  void rope_store_kv(KvCache& kv, void* q, void* k, const void* v, int layer,
                     const AttentionParams& attn, const RopeConfig& rope) override;
  void paged_attention(const KvCache& kv, const void* q, int layer, const AttentionParams& attn,
                       void* out) override;
  void silu_mul(const void* gate, const void* up, int64_t count, void* out) override;
  void gather_logit_rows(const void* x, int dim, void* out) override;
  void lm_head(const void* x, int rows, const Weight& w, float* logits) override;

  // Sampling (cuda_ops_sampling.cpp).
  bool sample_on_device(const float* logits, int rows, int vocab, std::span<const SampleSpec> specs,
                        std::span<int32_t> out_tokens,
                        std::span<SampledLogprobs> out_logprobs) override;
  bool sample_async(const float* logits, int rows, int vocab,
                    std::span<const SampleSpec> specs) override;
  void collect_sampled(std::span<int32_t> out_tokens,
                       std::span<SampledLogprobs> out_logprobs) override;
  // Step timing (cuda_ops_pipeline.cpp).
  void end_step() override;
  DeviceTimeline device_timeline() override;

  std::string make_collective_id() override;
  void join_collectives(const std::string& id, int rank, int world) override;
  void abort_collectives() override;
  void all_reduce_sum(void* buf, int64_t count) override;

  bool graph_replay(uint64_t key) override;
  uint64_t graph_key(uint64_t key) const;  // the model's key plus the attention plan's shape
  bool graph_capture_begin(uint64_t key) override;
  bool graph_capture_end() override;
  void graph_capture_abort() override;

  cudaStream_t stream() const { return stream_; }
  int num_sms() const { return num_sms_; }
  // Called by a CudaKvCache being destroyed: waits for the stream, drops every graph (they
  // may read its pools) and forgets it as the step's cache.
  void forget_kv_cache(const CudaKvCache* kv);
  const AttentionPlan& attention_plan() const { return plan_; }

 private:
  // Counts that fix every launch shape and metadata offset of a step (graph validity).
  using Signature = std::tuple<int, int, int, int, int, int, int, int, int, int, bool>;
  struct Graph {
    Signature signature;
    cudaGraphExec_t exec = nullptr;
  };
  struct LayoutOffsets {  // int32 offsets into the metadata buffer
    size_t tokens, positions, slots, query_start, context_len, bt_start, logit_rows;
    size_t decode_items, decode_merges, prefill_items, prefill_merges, block_tables;
    size_t token_feed;  // after block_tables: the graphs' offsets do not move with it
    size_t table_updates;
  };

  // Quantized weights (cuda_ops_quant.cpp).
  static bool is_scheme(const Weight& w);
  static QuantWeightArgs quant_args(const Weight& w);
  // One tensor-core GEMV launch for quantized Q/K/V or gate/up at decode sizes; false when
  // these weights or rows do not take it (the caller goes on as before).
  bool matmul_multi_scheme(const void* x, int rows, std::span<const Weight* const> ws,
                           std::span<void* const> outs);
  bool gate_up_silu_scheme(const void* x, int rows, const Weight& gate, const Weight& up,
                           void* out);
  Weight upload_scheme(const HostTensor& t);
  // GGUF weights as blocks on the GPU (set_gguf_blocks; else dequantized to bf16 at upload).
  Weight upload_gguf(const HostTensor& t);
  void matmul_scheme(const void* x, int rows, const Weight& w, void* out, bool out_f32);
  void reserve_fp8_activations(int tokens);
  DeviceBuffer dequant_scratch_;  // a quantized weight as bf16, for larger batches
  DeviceBuffer act_scratch_;      // per-token FP8 activations and their scales
  // Split-k partials and counters of the int4 GEMM, zeroed when reserved: at the first tiled
  // int4 upload, or at the first GEMM outside a graph capture (weights made on the device);
  // nullptr before (the GEMM then runs unsplit).
  DeviceBuffer int4_gemm_scratch_;
  void* int4_gemm_ws();
  int64_t max_fp8_cols_ = 0;  // widest fp8 weight uploaded (sizes act_scratch_)
  bool fp8_gemm_ok_ = true;   // false once cuBLASLt had no FP8 algorithm

 public:
  // Whether fp8 weights at more than kMaxQuantGemvRows rows take the cuBLASLt FP8 GEMM.
  bool fp8_gemm_active() const { return fp8_gemm_ok_; }

 private:
  void ensure_plan(int num_heads, int sliding_window);
  void upload_metadata();
  Signature signature() const;
  const float* inv_freq_for(const RopeConfig& rope, int head_dim);
  const int32_t* meta(size_t offset) const;
  void clear_graphs();
  bool capturing() const { return capture_key_.has_value(); }
  // Closes a capture that failed (cuda_ops_graph.cpp): the stream leaves capture mode, the
  // error is cleared, and this step size runs eagerly from now on.
  void abandon_capture(const char* why);
  void inject_capture_fault();  // TESSERA_DEBUG_FAIL_GRAPH_CAPTURE (cuda_ops_graph.cpp)
  // Deterministic mode (cuda_ops_invariant.cpp): one batch-invariant GEMM for every batch.
  void matmul_invariant(const void* x, int rows, const Weight& w, void* out, bool out_f32);

  int device_ = 0;
  int num_sms_ = 132;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t upload_done_ = nullptr;
  std::unique_ptr<LtGemm> gemm_;

  // The step's KV cache (begin_step) and a copy of its shape and storage type.
  CudaKvCache* kv_ = nullptr;
  KvCacheShape kv_shape_;
  DType kv_dtype_ = DType::kBF16;
  CudaKvCache& mine(const KvCache& kv) const;
  void check_step_kv(const KvCache& kv, const char* op) const;

  // This step's layout (host copy) and its plan.
  StepLayout layout_;
  AttentionPlan plan_;
  int plan_num_heads_ = 0;
  int plan_window_ = -1;
  bool plan_uploaded_ = false;
  LayoutOffsets off_{};
  DeviceBuffer meta_dev_;
  PinnedBuffer meta_host_;
  DeviceBuffer partials_;
  size_t decode_partial_floats_ = 0;  // partial_o floats for decode; lse follows all partials

  std::map<std::tuple<float, int, float, float, float, int, bool, int>, float*> inv_freq_;
  // Block tables kept on the device across steps (layouts with seq_keys): the attention
  // kernels read bt_dev_; each step uploads only the entries bt_mirror_ reports changed.
  BlockTableMirror bt_mirror_;
  DeviceBuffer bt_dev_;
  std::vector<BlockTableMirror::Update> bt_updates_;  // this step's, until uploaded
  std::vector<int32_t> bt_row_start_;
  void update_device_tables();
  bool device_tables() const { return !layout_.seq_keys.empty(); }
  const int32_t* block_tables_ptr() const;
  // A sampling's pinned staging: [specs | penalty histories] go up, [tokens | logprobs]
  // come back (byte offsets).
  struct SampleStage {
    int rows = 0;
    int pen_slots = 0;      // rows with penalties
    bool logprobs = false;  // some row asks for logprobs
    size_t upload = 0;      // specs + histories
    size_t tokens = 0;
    size_t logprob_rows = 0;
    size_t total = 0;
  };
  DeviceBuffer sample_in_dev_;   // specs + histories
  DeviceBuffer sample_out_dev_;  // the latest sampling's tokens (fed to pipelined steps)
  DeviceBuffer sample_lp_dev_;
  DeviceBuffer sample_pen_dev_;     // penalized rows
  DeviceBuffer sample_counts_dev_;  // their token counts: zero between samplings
  PinnedBuffer sample_host_;
  int sample_out_rows_ = 0;
  // Checks the specs and writes them (and their histories) into `staging`.
  SampleStage stage_sample(std::span<const SampleSpec> specs, PinnedBuffer& staging) const;
  void enqueue_sample(const float* logits, int vocab, const SampleStage& stage, uint8_t* staging);
  // sample_async's staging: two slots, so one step's tokens can travel while the next
  // step's specs are written.
  struct SampleSlot {
    PinnedBuffer host;
    SampleStage stage;
    cudaEvent_t done = nullptr;
    bool busy = false;
  };
  SampleSlot sample_slots_[2];
  int next_sample_slot_ = 0;
  std::vector<int> slots_in_flight_;  // oldest first
  // Step timing: events at begin_step and end_step of each step, accounted once reached.
  struct StepMarks {
    cudaEvent_t start, end;
  };
  cudaEvent_t take_event();
  void account_steps();
  void destroy_pipeline_events();
  std::vector<cudaEvent_t> spare_events_;
  std::vector<StepMarks> marks_;  // issued, not yet accounted, oldest first
  cudaEvent_t step_start_ = nullptr;
  cudaEvent_t last_end_ = nullptr;
  DeviceTimeline timeline_;
  DeviceBuffer pairs_dev_;

  std::map<uint64_t, Graph> graphs_;
  std::optional<uint64_t> capture_key_;
  int capture_tokens_ = 0;     // the step size being captured
  std::set<int> eager_sizes_;  // step sizes whose capture failed: never again
  bool capture_failure_logged_ = false;
  std::unique_ptr<NcclComm> nccl_;  // set by join_collectives (tensor parallelism)
};

}  // namespace tessera::cuda
