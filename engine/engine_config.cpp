#include "engine/engine_config.h"

#include <string>

#include "common/error.h"
#include "kernels/kv_cache.h"

namespace tessera {
namespace {

void require(bool ok, const char* field, const std::string& why) {
  if (!ok) throw Error(ErrorKind::kInvalidArgument, std::string("config: ") + field + " " + why);
}

}  // namespace

void EngineConfig::validate() const {
  require(!model.empty(), "model", "must name a .gguf file, a model folder or dummy:<config>");
  require(device == "auto" || device == "cpu" || device == "cuda", "device",
          "must be auto, cpu or cuda (got '" + device + "')");
  require(num_threads >= 0, "num_threads", "must be >= 0 (0 = all cores)");
  require(quantization == "none" || quantization == "f32" || quantization == "f16" ||
              quantization == "bf16" || quantization == "fp8" || quantization == "int8" ||
              quantization == "int4",
          "quantization",
          "must be none, f32, f16, bf16, fp8, int8 or int4 (got '" + quantization + "')");
  require(tensor_parallel >= 1, "tensor_parallel", "must be >= 1");
  require(kv_cache_bytes > 0, "kv_cache_bytes", "must be > 0");
  require(gpu_memory_fraction > 0.0f && gpu_memory_fraction <= 1.0f, "gpu_memory_fraction",
          "must be in (0, 1]");
  require(block_size > 0 && block_size <= 256 && (block_size & (block_size - 1)) == 0, "block_size",
          "must be a power of two in [1, 256]");
  KvDtype kv_dtype;
  require(parse_kv_dtype(kv_cache_dtype.c_str(), kv_dtype), "kv_cache_dtype",
          "must be auto, bf16, fp16, f32, fp8 or int8 (got '" + kv_cache_dtype + "')");
  require(max_model_len >= 0, "max_model_len", "must be >= 0 (0 = the model's context length)");
  require(max_num_seqs >= 1, "max_num_seqs", "must be >= 1");
  require(max_num_batched_tokens >= 1, "max_num_batched_tokens", "must be >= 1");
  require(static_batch_size >= 1, "static_batch_size", "must be >= 1");
  require(static_flush_timeout_ms >= 0, "static_flush_timeout_ms", "must be >= 0");
  require(dynamic_max_queue_delay_ms >= 0, "dynamic_max_queue_delay_ms", "must be >= 0");
  require(max_waiting >= 1, "max_waiting", "must be >= 1");
  require(health_stall_timeout_ms >= 1, "health_stall_timeout_ms", "must be >= 1");
  require(async_scheduling == "auto" || async_scheduling == "on" || async_scheduling == "off",
          "async_scheduling", "must be auto, on or off (got '" + async_scheduling + "')");
  require(gguf_weights == "bf16" || gguf_weights == "blocks", "gguf_weights",
          "must be bf16 or blocks (got '" + gguf_weights + "')");
  require(speculative == "none" || speculative == "ngram" || speculative == "draft" ||
              speculative == "early-exit",
          "speculative", "must be none, ngram, draft or early-exit (got '" + speculative + "')");
  require(num_speculative_tokens >= 1 && num_speculative_tokens <= 16, "num_speculative_tokens",
          "must be in [1, 16]");
  require(speculative != "draft" || !draft_model.empty(), "draft_model",
          "must name the draft model when speculative is draft");
  require(speculative_early_exit_layers >= 0, "speculative_early_exit_layers", "must be >= 0");
  require(speculative_ngram_min >= 1 && speculative_ngram_max >= speculative_ngram_min,
          "speculative_ngram_max", "must be >= speculative_ngram_min >= 1");
  require(speculative_max_step_tokens >= 0, "speculative_max_step_tokens", "must be >= 0");
  require(speculative == "none" || tensor_parallel == 1, "speculative",
          "is not supported with tensor_parallel > 1 yet");
  if (policy == BatchingPolicy::kStatic)
    require(static_batch_size <= max_num_seqs, "static_batch_size",
            "must be <= max_num_seqs (" + std::to_string(max_num_seqs) + ")");
}

const char* batching_policy_name(BatchingPolicy p) {
  switch (p) {
    case BatchingPolicy::kStatic:
      return "static";
    case BatchingPolicy::kDynamic:
      return "dynamic";
    case BatchingPolicy::kContinuous:
      return "continuous";
  }
  return "unknown";
}

}  // namespace tessera
