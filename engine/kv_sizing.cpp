#include "engine/kv_sizing.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>

#include "common/error.h"

namespace tessera {

KvSizing size_kv_cache(const KvSizingInput& in) {
  KvSizing out;
  const int64_t formula =
      static_cast<int64_t>(in.num_layers) * 2 * in.num_kv_heads * in.head_dim * in.elem_bytes;
  out.bytes_per_token = in.bytes_per_token > 0 ? in.bytes_per_token : formula;
  if (out.bytes_per_token <= 0 || in.block_size <= 0)
    throw Error(ErrorKind::kInternal, "KV cache: model reports 0 bytes per token");
  // 8-bit caches add one f32 scale per token, layer, K/V and KV head beyond the formula.
  const int64_t extra = out.bytes_per_token - formula;
  const std::string why = fmt::format(
      "{} bytes/token = {} layers x 2 x {} kv_heads x {} head_dim x {} bytes{}; budget {} bytes",
      out.bytes_per_token, in.num_layers, in.num_kv_heads, in.head_dim, in.elem_bytes,
      extra > 0 ? fmt::format(" + {} bytes of scales or draft-model KV", extra) : std::string(),
      in.budget_bytes);

  const int64_t block_bytes = out.bytes_per_token * in.block_size;
  const int64_t usable = std::max<int64_t>(in.budget_bytes, 0) / block_bytes - 1;  // - block 0
  if (usable < 1)
    throw Error(ErrorKind::kResourceExhausted,
                fmt::format("KV cache: budget holds no block of {} tokens ({} bytes); need at "
                            "least {} bytes ({})",
                            in.block_size, block_bytes, 2 * block_bytes, why));
  const int64_t capped_blocks = std::min<int64_t>(usable, (int64_t{1} << 31) / in.block_size - 1);
  out.num_blocks = static_cast<int>(capped_blocks + 1);
  out.capacity_tokens = static_cast<int>(capped_blocks * in.block_size);

  if (in.requested_max_model_len > 0) {
    if (in.model_context_len > 0 && in.requested_max_model_len > in.model_context_len)
      throw Error(ErrorKind::kInvalidArgument,
                  fmt::format("max_model_len {} exceeds the model's context length {}",
                              in.requested_max_model_len, in.model_context_len));
    out.max_model_len = in.requested_max_model_len;
    if (out.max_model_len > out.capacity_tokens) {
      const int64_t need =
          (static_cast<int64_t>((out.max_model_len + in.block_size - 1) / in.block_size) + 1) *
          block_bytes;
      throw Error(ErrorKind::kResourceExhausted,
                  fmt::format("KV cache: {} blocks x {} tokens = {} tokens, fewer than one "
                              "max_model_len={} sequence ({}); raise the KV budget to at least "
                              "{} bytes or lower max_model_len",
                              out.num_blocks - 1, in.block_size, out.capacity_tokens,
                              out.max_model_len, why, need));
    }
  } else {
    out.max_model_len = in.model_context_len > 0 ? in.model_context_len : out.capacity_tokens;
    if (out.max_model_len > out.capacity_tokens) {
      out.max_model_len = out.capacity_tokens;
      out.capped = true;
    }
  }
  out.summary =
      fmt::format("KV cache: {} blocks x {} tokens = {} tokens ({}); max_model_len {}{}",
                  out.num_blocks - 1, in.block_size, out.capacity_tokens, why, out.max_model_len,
                  out.capped ? " (capped from the model's context to fit)" : "");
  return out;
}

}  // namespace tessera
