#include "engine/engine_factory.h"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "engine/engine_impl.h"
#include "engine/kv_sizing.h"
#include "engine/model_runner.h"
#include "engine/null_tokenizer.h"
#include "engine/speculation_setup.h"
#include "engine/tp_group.h"
#include "engine/tp_worker.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/model_needs.h"
#include "model/quant_online.h"
#include "model/tokenizer.h"
#include "model/tp_model.h"
#include "model/tp_shard.h"
#include "model/weights.h"

namespace tessera {
namespace {

// What the engine keeps alive for its executor: declaration order is destruction order
// reversed, so the model goes before the backend, the backend before the weights.
struct ModelResources {
  LoadedModel loaded;
  std::unique_ptr<Ops> ops;
  TpShard shard;
  std::unique_ptr<LlamaModel> model;
  LoadedModel draft_loaded;  // --draft-model
  std::unique_ptr<LlamaModel> draft;
  std::unique_ptr<Proposer> proposer;  // speculative decoding; runs the models above
  std::unique_ptr<TpGroup> tp;         // first to go: workers leave before rank 0's model does
};

std::string served_name(const EngineConfig& c) {
  if (!c.served_model_name.empty()) return c.served_model_name;
  if (c.model.rfind("dummy:", 0) == 0) return std::filesystem::path(c.model.substr(6)).stem();
  std::filesystem::path p(c.model);
  if (p.has_filename() && p.filename() != ".") return p.has_extension() ? p.stem() : p.filename();
  return p.parent_path().filename();
}

std::unique_ptr<Ops> make_backend(const EngineConfig& c, std::string& device) {
  device = c.device;
  if (device == "auto") device = cuda_available() ? "cuda" : "cpu";
  if (c.tensor_parallel != 1 && device != "cuda")
    throw Error(ErrorKind::kUnsupported, "tensor_parallel=" + std::to_string(c.tensor_parallel) +
                                             " needs the CUDA backend (device " + device + ")");
  std::unique_ptr<Ops> ops = device == "cuda" ? make_cuda_ops(0) : make_cpu_ops(c.num_threads);
  ops->set_deterministic(c.deterministic);           // before upload: it changes what is kept
  ops->set_gguf_blocks(c.gguf_weights == "blocks");  // validate() checked the value
  return ops;
}

int64_t kv_budget(const EngineConfig& c, const std::string& device, Ops& ops) {
  if (device != "cuda") return c.kv_cache_bytes;
  size_t free_bytes = 0, total_bytes = 0;
  if (!ops.memory_info(free_bytes, total_bytes)) {
    spdlog::warn("backend does not report free memory; using kv_cache_bytes={} for the KV cache",
                 c.kv_cache_bytes);
    return c.kv_cache_bytes;
  }
  // Weights are resident already: keep (1 - fraction) of the device free for activations
  // and everything else, the rest goes to the KV cache.
  const double reserve = (1.0 - static_cast<double>(c.gpu_memory_fraction)) * total_bytes;
  const int64_t budget = static_cast<int64_t>(static_cast<double>(free_bytes) - reserve);
  spdlog::info("device memory: {} free of {} bytes; gpu_memory_fraction {} leaves {} for KV",
               free_bytes, total_bytes, c.gpu_memory_fraction, std::max<int64_t>(budget, 0));
  return budget;
}

}  // namespace

std::unique_ptr<Engine> create_engine(const EngineConfig& config) {
  config.validate();
  auto res = std::make_shared<ModelResources>();
  std::string device;
  res->ops = make_backend(config, device);

  spdlog::info("loading model {} (device {}, backend {}) ...", config.model, device,
               res->ops->name());
  const auto t0 = Clock::now();
  if (config.tensor_parallel > 1) {
    // Workers start loading while rank 0 does.
    TpGroupOptions o;
    o.world = config.tensor_parallel;
    o.master = config.tp_master;
    o.spawn_local = config.tp_spawn_workers;
    res->tp = std::make_unique<TpGroup>(o);
  }
  res->loaded = load_model(config.model);
  quantize_loaded_model(res->loaded, parse_online_quant(config.quantization));
  const ModelConfig& mc = res->loaded.config;
  // Refused here, before anything is uploaded, with the model's value and what is supported.
  res->ops->check_supported(model_needs(config.model, mc, res->loaded.weights));
  if (res->tp)
    res->shard =
        make_tp_shard(mc, 0, config.tensor_parallel, tp_ffn_alignment(res->loaded.weights));
  spdlog::info("loading model: weights read in {:.1f} s; uploading {} layers",
               std::chrono::duration<double>(Clock::now() - t0).count(), mc.num_layers);
  // About ten progress lines, whatever the depth, and always the last one.
  const int every = std::max(1, mc.num_layers / 10);
  res->model = std::make_unique<LlamaModel>(
      mc, res->loaded.weights, *res->ops,
      [every](int done, int total) {
        if (done % every == 0 || done == total)
          spdlog::info("loading model: {}/{} layers uploaded", done, total);
      },
      res->tp ? &res->shard : nullptr);
  spdlog::info(
      "model loaded in {:.1f} s: {} layers, hidden {}, {} heads / {} kv heads, vocab {}, "
      "{:.0f}M parameters",
      std::chrono::duration<double>(Clock::now() - t0).count(), mc.num_layers, mc.hidden_size,
      mc.num_heads, mc.num_kv_heads, mc.vocab_size, mc.num_parameters() / 1e6);

  if (config.speculative == "draft") {
    spdlog::info("loading draft model {} ...", config.draft_model);
    res->draft_loaded = load_model(config.draft_model);
    quantize_loaded_model(res->draft_loaded, parse_online_quant(config.quantization));
    res->draft = std::make_unique<LlamaModel>(res->draft_loaded.config, res->draft_loaded.weights,
                                              *res->ops);
  }

  KvSizingInput in;
  in.budget_bytes = kv_budget(config, device, *res->ops);
  in.num_layers = mc.num_layers;
  in.num_kv_heads = res->model->config().num_kv_heads;  // this rank's under tensor parallelism
  in.head_dim = mc.head_dim;
  KvDtype kv_dtype = KvDtype::kAuto;
  parse_kv_dtype(config.kv_cache_dtype.c_str(), kv_dtype);  // validated above
  kv_dtype = res->ops->resolve_kv_dtype(kv_dtype);          // throws when unsupported here
  in.elem_bytes = static_cast<int>(kv_elem_bytes(kv_dtype));
  in.bytes_per_token = static_cast<int64_t>(res->model->kv_bytes_per_token(kv_dtype));
  // A draft model's cache has the same blocks (same block tables), so both share the budget.
  if (res->draft) in.bytes_per_token += res->draft->kv_bytes_per_token(kv_dtype);
  in.block_size = config.block_size;
  in.requested_max_model_len = config.max_model_len;
  in.model_context_len = mc.max_position_embeddings;
  const KvSizing kv = size_kv_cache(in);
  if (kv.capped)
    spdlog::warn("max_model_len lowered from the model's {} to {} tokens to fit the KV cache",
                 mc.max_position_embeddings, kv.max_model_len);
  spdlog::info("{} (KV dtype {})", kv.summary, kv_dtype_name(kv_dtype));
  res->model->init_kv_cache(kv.num_blocks, config.block_size, kv_dtype, kv.max_model_len);
  if (res->draft)
    res->draft->init_kv_cache(kv.num_blocks, config.block_size, kv_dtype, kv.max_model_len);
  Speculation spec = make_speculation(config, *res->model, res->draft.get(), device);
  res->proposer = std::move(spec.proposer);
  if (res->tp) {
    TpBootstrap boot;
    boot.model = config.model;
    boot.quantization = config.quantization;
    boot.kv_dtype = kv_dtype_name(kv_dtype);
    boot.num_blocks = kv.num_blocks;
    boot.block_size = config.block_size;
    boot.max_seq_len = kv.max_model_len;
    boot.deterministic = config.deterministic;
    boot.gguf_blocks = config.gguf_weights == "blocks";
    boot.nccl_id = res->ops->make_collective_id();
    res->tp->start(boot.to_json());
    res->ops->join_collectives(boot.nccl_id, 0, config.tensor_parallel);
    Ops* ops = res->ops.get();
    res->tp->watch([ops](const std::string&) { ops->abort_collectives(); });
    spdlog::info("tensor parallel: {} ranks, {} heads / {} KV heads and {} MLP rows per rank",
                 config.tensor_parallel, res->shard.num_heads, res->shard.num_kv_heads,
                 res->shard.ffn_end - res->shard.ffn_begin);
  }

  EngineParts parts;
  parts.config = config;
  parts.tokenizer = res->loaded.tokenizer
                        ? std::shared_ptr<const Tokenizer>(res->loaded.tokenizer)
                        : std::make_shared<NullTokenizer>(mc.vocab_size, mc.eos_token_id);
  parts.model_config = mc;
  parts.model_name = served_name(config);
  parts.max_model_len = kv.max_model_len;

  SchedulerConfig& sc = parts.scheduler;
  sc.policy = config.policy == BatchingPolicy::kStatic    ? PolicyKind::kStatic
              : config.policy == BatchingPolicy::kDynamic ? PolicyKind::kDynamic
                                                          : PolicyKind::kContinuous;
  sc.kv.block_size = config.block_size;
  sc.kv.num_blocks = kv.num_blocks;
  sc.kv.enable_prefix_caching = config.enable_prefix_caching;
  sc.max_num_seqs = config.max_num_seqs;
  sc.max_num_batched_tokens = config.max_num_batched_tokens;
  sc.enable_chunked_prefill = config.enable_chunked_prefill;
  sc.max_waiting = config.max_waiting;
  sc.max_model_len = kv.max_model_len;
  sc.static_batch_size = config.static_batch_size;
  sc.static_flush_timeout = std::chrono::milliseconds(config.static_flush_timeout_ms);
  sc.dynamic_max_queue_delay = std::chrono::milliseconds(config.dynamic_max_queue_delay_ms);

  LlamaModel* model = res->model.get();
  const int block_size = config.block_size;
  const bool pad_decode = device == "cuda";  // decode steps replay from CUDA graphs
  TpGroup* tp = res->tp.get();
  Proposer* proposer = res->proposer.get();
  parts.proposer = proposer;
  parts.spec = spec.control;
  parts.async_scheduling =
      config.async_scheduling == "on" || (config.async_scheduling == "auto" && device == "cuda");
  parts.make_executor = [model, block_size, pad_decode, tp,
                         proposer](const SamplingSource& source) {
    auto runner = std::make_unique<ModelRunner>(*model, block_size, source, pad_decode);
    runner->set_proposer(proposer);
    if (tp != nullptr)
      runner->set_step_forwarder([tp](std::span<const std::pair<int32_t, int32_t>> copies,
                                      const StepLayout& layout) { tp->send_step(copies, layout); });
    return runner;
  };
  parts.resources = res;
  spdlog::info(
      "engine: policy {}, max_num_seqs {}, max_num_batched_tokens {}, chunked prefill {}, "
      "prefix caching {}, deterministic {}, async scheduling {}, GGUF weights on the GPU {}",
      batching_policy_name(config.policy), config.max_num_seqs, config.max_num_batched_tokens,
      config.enable_chunked_prefill ? "on" : "off", config.enable_prefix_caching ? "on" : "off",
      config.deterministic ? "on" : "off", parts.async_scheduling ? "on" : "off",
      config.gguf_weights);
  return std::make_unique<EngineImpl>(std::move(parts));
}

}  // namespace tessera
