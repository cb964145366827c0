#pragma once
// Perplexity of a model over a token stream, with llama.cpp's definition (its `perplexity`
// tool): the tokens are cut into chunks of ctx_size; each chunk is evaluated from an empty
// context (its first token replaced by BOS when the vocabulary adds one), and the tokens of
// its second half are scored: the logits at positions [ctx/2, ctx - 1) predict the tokens at
// [ctx/2 + 1, ctx). PPL = exp(mean negative log-likelihood) over all scored tokens.
#include <cstdint>
#include <functional>
#include <span>

#include "kernels/kv_cache.h"

namespace tessera {

class LlamaModel;

struct PerplexityOptions {
  int ctx_size = 512;
  int chunks = -1;                    // chunks to evaluate at most (-1: all that fit)
  int batch_size = 2048;              // tokens per forward step (llama.cpp's n_batch)
  int32_t bos_id = -1;                // >= 0: each chunk starts with this token
  KvDtype kv_dtype = KvDtype::kAuto;  // the KV cache's element type (kernels/kv_cache.h)
  // Called after every chunk with the running estimate.
  std::function<void(int chunk, int num_chunks, double ppl)> on_chunk;
};

struct PerplexityResult {
  double ppl = 0.0;
  double ppl_error = 0.0;  // llama.cpp's "+/-": stddev of the mean NLL, times PPL
  double mean_nll = 0.0;
  int chunks = 0;
  int64_t scored = 0;  // tokens scored
};

// Throws Error(kInvalidArgument) when tokens hold fewer than 2 * ctx_size tokens (as
// llama.cpp requires) or ctx_size is below 2. The model's KV cache is (re)initialized.
PerplexityResult perplexity(LlamaModel& model, std::span<const int32_t> tokens,
                            const PerplexityOptions& options);

}  // namespace tessera
