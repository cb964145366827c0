#include "server/perplexity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/ops.h"
#include "model/llama_model.h"

namespace tessera {
namespace {

constexpr int kBlockSize = 16;

// log p(tok) from one logits row, computed as llama.cpp's log_softmax does (float max and
// differences, double sum of exponentials).
double log_prob(const float* logits, int vocab, int32_t tok) {
  float max_logit = logits[0];
  for (int i = 1; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum_exp = 0.0;
  for (int i = 0; i < vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
  return logits[tok] - max_logit - std::log(sum_exp);
}

}  // namespace

PerplexityResult perplexity(LlamaModel& model, std::span<const int32_t> tokens,
                            const PerplexityOptions& o) {
  const int n_ctx = o.ctx_size;
  if (n_ctx < 2 || o.batch_size < 1) {
    throw Error(ErrorKind::kInvalidArgument, "perplexity: ctx_size must be >= 2");
  }
  if (static_cast<int64_t>(tokens.size()) < 2 * int64_t{n_ctx}) {
    throw Error(ErrorKind::kInvalidArgument, "perplexity: the text has " +
                                                 std::to_string(tokens.size()) +
                                                 " tokens; a context of " + std::to_string(n_ctx) +
                                                 " needs at least " + std::to_string(2 * n_ctx));
  }
  const int vocab = model.config().vocab_size;
  const int max_chunks = static_cast<int>(tokens.size() / n_ctx);
  const int n_chunks = o.chunks < 0 ? max_chunks : std::min(o.chunks, max_chunks);
  const int first = n_ctx / 2;
  const int num_blocks = (n_ctx + kBlockSize - 1) / kBlockSize;
  // One sequence at a time in blocks 1..num_blocks (0 is the padding block). Every chunk
  // restarts at position 0 and attends to context_len tokens, so the cache needs no reset.
  model.init_kv_cache(num_blocks + 1, kBlockSize, o.kv_dtype);
  std::vector<int32_t> blocks;
  for (int b = 1; b <= num_blocks; ++b) blocks.push_back(b);

  PerplexityResult r;
  double nll = 0.0, nll2 = 0.0;
  std::vector<float> logits;
  for (int c = 0; c < n_chunks; ++c) {
    const int64_t start = int64_t{c} * n_ctx;
    std::vector<int32_t> chunk(tokens.begin() + start, tokens.begin() + start + n_ctx);
    if (o.bos_id >= 0) chunk[0] = o.bos_id;
    for (int b0 = 0; b0 < n_ctx; b0 += o.batch_size) {
      const int b1 = std::min(n_ctx, b0 + o.batch_size);
      StepLayout l;
      l.block_size = kBlockSize;
      for (int p = b0; p < b1; ++p) {
        l.tokens.push_back(chunk[p]);
        l.positions.push_back(p);
        l.slot_mapping.push_back(blocks[p / kBlockSize] * kBlockSize + p % kBlockSize);
        if (p >= first && p < n_ctx - 1) l.logit_rows.push_back(p - b0);
      }
      const int used = (b1 + kBlockSize - 1) / kBlockSize;
      l.query_start = {0, b1 - b0};
      l.context_len = {b1};
      l.block_table_start = {0, used};
      l.block_tables.assign(blocks.begin(), blocks.begin() + used);
      model.forward(l, logits);
      for (size_t i = 0; i < l.logit_rows.size(); ++i) {
        const int p = b0 + l.logit_rows[i];
        const double v =
            -log_prob(logits.data() + i * static_cast<size_t>(vocab), vocab, tokens[start + p + 1]);
        nll += v;
        nll2 += v * v;
        ++r.scored;
      }
    }
    r.chunks = c + 1;
    if (o.on_chunk) o.on_chunk(c, n_chunks, std::exp(nll / static_cast<double>(r.scored)));
  }
  r.mean_nll = nll / static_cast<double>(r.scored);
  r.ppl = std::exp(r.mean_nll);
  const double var = nll2 / static_cast<double>(r.scored) - r.mean_nll * r.mean_nll;
  if (var > 0 && r.scored > 1) {
    r.ppl_error = std::sqrt(var / static_cast<double>(r.scored - 1)) * r.ppl;
  }
  return r;
}

}  // namespace tessera
