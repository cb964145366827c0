#include "engine/simple_generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "common/error.h"
#include "engine/sampler.h"
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

GenerateResult simple_generate(LlamaModel& model, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw Error(ErrorKind::kInvalidArgument, "the prompt has no tokens");
  if (options.max_tokens < 0) throw Error(ErrorKind::kInvalidArgument, "max_tokens must be >= 0");
  using Clock = std::chrono::steady_clock;
  GenerateResult result;
  const uint64_t seed = options.sampling.seed.value_or(0);
  SequenceRunner runner(model, static_cast<int>(prompt.size()) + std::max(1, options.max_tokens));
  const auto t0 = Clock::now();
  std::vector<float> logits = runner.feed(prompt);
  const auto t1 = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int i = 0; i < options.max_tokens; ++i) {
    const TokenHistory history{prompt, result.tokens};
    const int32_t id = sample_token(logits, options.sampling, history, seed).token;
    result.tokens.push_back(id);
    const bool keep_going = !on_token || on_token(id);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
      result.stopped = true;
      break;
    }
    if (!keep_going || i + 1 == options.max_tokens) break;
    const int32_t one[] = {id};
    logits = runner.feed(one);
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return result;
}

}  // namespace tessera
