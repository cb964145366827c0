#include "engine/simple_generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/metrics.h"
#include "engine/engine_impl.h"
#include "engine/model_runner.h"
#include "engine/null_tokenizer.h"
#include "model/llama_model.h"

namespace tessera {

SequenceRunner::SequenceRunner(LlamaModel& model, int max_len, int block_size, int prefill_chunk)
    : model_(model), max_len_(max_len), block_size_(block_size), prefill_chunk_(prefill_chunk) {
  if (max_len <= 0 || block_size <= 0 || prefill_chunk <= 0) {
    throw Error(ErrorKind::kInvalidArgument, "SequenceRunner needs positive sizes");
  }
  const int num_blocks = (max_len + block_size - 1) / block_size;
  model_.init_kv_cache(num_blocks + 1, block_size);  // block 0 is the reserved padding block
  for (int b = 1; b <= num_blocks; ++b) blocks_.push_back(b);
}

std::vector<float> SequenceRunner::feed(std::span<const int32_t> tokens) {
  if (tokens.empty()) throw Error(ErrorKind::kInvalidArgument, "nothing to feed");
  if (length_ + static_cast<int64_t>(tokens.size()) > max_len_) {
    throw Error(ErrorKind::kInvalidArgument,
                "sequence of " + std::to_string(length_ + tokens.size()) +
                    " tokens exceeds the limit of " + std::to_string(max_len_));
  }
  std::vector<float> logits;
  size_t done = 0;
  while (done < tokens.size()) {
    const int n = static_cast<int>(std::min<size_t>(prefill_chunk_, tokens.size() - done));
    StepLayout l;
    l.block_size = block_size_;
    for (int i = 0; i < n; ++i) {
      const int pos = length_ + i;
      l.tokens.push_back(tokens[done + i]);
      l.positions.push_back(pos);
      l.slot_mapping.push_back(blocks_[pos / block_size_] * block_size_ + pos % block_size_);
    }
    length_ += n;
    done += n;
    const int used_blocks = (length_ + block_size_ - 1) / block_size_;
    l.query_start = {0, n};
    l.context_len = {length_};
    l.block_table_start = {0, used_blocks};
    l.block_tables.assign(blocks_.begin(), blocks_.begin() + used_blocks);
    if (done == tokens.size()) l.logit_rows = {n - 1};
    model_.forward(l, logits);
  }
  return logits;
}

namespace {

// A KV cache for one sequence of `max_len` tokens, plus the reserved block 0.
constexpr int kBlockSize = 16;
constexpr int kPrefillChunk = 512;

std::unique_ptr<EngineImpl> single_sequence_engine(LlamaModel& model, int max_len,
                                                   metrics::Registry& registry) {
  const ModelConfig& mc = model.config();
  const int num_blocks = (max_len + kBlockSize - 1) / kBlockSize + 1;
  model.init_kv_cache(num_blocks, kBlockSize);
  EngineParts parts;
  parts.tokenizer = std::make_shared<NullTokenizer>(mc.vocab_size, -1);  // ids only
  parts.model_config = mc;
  parts.model_config.eos_token_id = -1;  // stops are the caller's stop_ids only
  parts.model_name = "generate";
  parts.max_model_len = max_len;
  SchedulerConfig& sc = parts.scheduler;
  sc.kv.block_size = kBlockSize;
  sc.kv.num_blocks = num_blocks;
  sc.kv.enable_prefix_caching = false;
  sc.max_num_seqs = 1;
  sc.max_num_batched_tokens = kPrefillChunk;
  sc.max_waiting = 1;
  sc.max_model_len = max_len;
  parts.registry = &registry;
  parts.make_executor = [&model](const SamplingSource& source) {
    return std::make_unique<ModelRunner>(model, kBlockSize, source, /*pad_decode_batches=*/false);
  };
  return std::make_unique<EngineImpl>(std::move(parts));
}

}  // namespace

GenerateResult simple_generate(LlamaModel& model, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw Error(ErrorKind::kInvalidArgument, "the prompt has no tokens");
  if (options.max_tokens < 0) throw Error(ErrorKind::kInvalidArgument, "max_tokens must be >= 0");
  GenerateResult result;
  if (options.max_tokens == 0) return result;
  using Clock = std::chrono::steady_clock;
  const int max_len = static_cast<int>(prompt.size()) + options.max_tokens;
  metrics::Registry registry;  // private: a CLI run must not count in a server's metrics
  std::unique_ptr<EngineImpl> engine = single_sequence_engine(model, max_len, registry);

  GenerationRequest req;
  req.id = "generate";
  req.prompt.assign(prompt.begin(), prompt.end());
  req.sampling = options.sampling;
  req.sampling.max_tokens = options.max_tokens;
  req.sampling.seed = options.sampling.seed.value_or(0);
  req.sampling.n = 1;
  req.sampling.logprobs = -1;
  req.sampling.stop.clear();
  req.sampling.stop_token_ids = options.stop_ids;
  req.sampling.ignore_eos = true;  // the model's EOS stops only when it is in stop_ids
  req.arrival = Clock::now();
  const auto t0 = req.arrival;
  std::optional<Clock::time_point> first;
  std::shared_ptr<ResultStream> stream = engine->submit(std::move(req));
  bool cancelled = false;
  while (!stream->done()) {
    std::optional<GenerationEvent> ev = stream->next(std::chrono::milliseconds(100));
    if (!ev) continue;
    for (int32_t id : ev->token_ids) {
      if (cancelled) break;  // the caller asked for nothing past the token it refused
      if (!first) first = Clock::now();
      result.tokens.push_back(id);
      if (!cancelled && on_token && !on_token(id)) {
        cancelled = true;
        stream->cancel();
      }
    }
    if (ev->finish == FinishReason::kError) throw Error(ErrorKind::kInternal, ev->error);
    if (ev->finish == FinishReason::kStop) result.stopped = true;
  }
  const auto end = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(first.value_or(end) - t0).count();
  result.decode_seconds = std::chrono::duration<double>(end - first.value_or(end)).count();
  engine->stop();
  return result;
}

}  // namespace tessera
