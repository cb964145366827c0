#pragma once
// Everything needed to build an Engine. Filled by `tessera serve` from a JSON config
// (configs/*.json) plus CLI overrides; validated in one place (validate()).
#include <cstdint>
#include <string>

namespace tessera {

enum class BatchingPolicy { kStatic, kDynamic, kContinuous };

struct EngineConfig {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string served_model_name;      // empty: derived from the model file name
  std::string device = "auto";        // auto | cpu | cuda
  int num_threads = 0;                // CPU backend; 0 = all cores
  std::string quantization = "none";  // online: none | f32 | f16 | bf16 | fp8 | int8 | int4
  int tensor_parallel = 1;
  // Tensor parallelism: where workers reach rank 0 (port 0: any free port), and whether the
  // server starts them itself (one per local GPU) or they are started as `tessera worker`.
  std::string tp_master = "127.0.0.1:0";
  bool tp_spawn_workers = true;

  // KV cache: a byte budget on CPU, a fraction of free memory on GPU.
  int64_t kv_cache_bytes = 256ll << 20;
  float gpu_memory_fraction = 0.9f;
  int block_size = 16;
  // Element type of the KV cache: auto (the backend's: f32 on CPU, bf16 on CUDA) | bf16 |
  // fp16 | f32 | fp8 (e4m3) | int8; the 8-bit types keep one scale per token and KV head.
  std::string kv_cache_dtype = "auto";
  bool enable_prefix_caching = true;
  int max_model_len = 0;  // 0 = the model's context length
  // Batch-invariant kernels: a request's output does not depend on what it is batched with
  // (greedy outputs equal their solo runs); slower on CUDA (see README).
  bool deterministic = false;
  // GGUF weights on the GPU: bf16 (dequantized at upload; the faster kernels) | blocks (kept
  // as GGUF blocks: a third of the memory for 4-bit types). The CPU always uses the blocks.
  std::string gguf_weights = "bf16";
  // Pipelined steps (engine/engine_impl.h): auto (on for CUDA, off on the CPU, where the
  // host is the device) | on | off. Steps that need the host between them run one at a time.
  std::string async_scheduling = "auto";

  BatchingPolicy policy = BatchingPolicy::kContinuous;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  bool enable_chunked_prefill = true;
  int static_batch_size = 8;            // static policy: N
  int static_flush_timeout_ms = 50;     // static policy: launch a partial batch after this
  int dynamic_max_queue_delay_ms = 10;  // dynamic policy
  int max_waiting = 1024;               // bounded waiting queue (beyond: 429)

  // Speculative decoding (engine/proposer.h): none | ngram | draft | early-exit.
  std::string speculative = "none";
  int num_speculative_tokens = 4;         // draft tokens per step at most
  std::string draft_model;                // speculative=draft: a smaller model, same tokenizer
  int speculative_early_exit_layers = 0;  // early-exit: the draft's layers (0: a quarter)
  int speculative_ngram_min = 1;          // ngram: shortest suffix looked up
  int speculative_ngram_max = 4;          // ngram: longest suffix looked up
  // No drafting once decoding sequences * (k + 1) exceed this (compute-bound steps);
  // 0: the backend's measured default.
  int speculative_max_step_tokens = 0;
  bool speculative_adaptive = true;  // k from measured acceptance; false: always the max

  int health_stall_timeout_ms = 30000;  // /health is 503 when the loop stalls this long

  void validate() const;  // throws Error(kInvalidArgument) naming the bad field
};

const char* batching_policy_name(BatchingPolicy p);

}  // namespace tessera
