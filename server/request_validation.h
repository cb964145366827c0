#pragma once
// Validation shared by the HTTP and gRPC frontends, so both reject the same inputs with the
// same field names (the OpenAI JSON names). Everything throws ApiError (status 400).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"

namespace tessera {

// Limits beyond the obvious ranges; documented in the README's API section.
constexpr int kMaxChoices = 64;   // n
constexpr int kMaxLogprobs = 20;  // logprobs / top_logprobs, as OpenAI
constexpr int kMaxStopStrings = 16;
constexpr size_t kMaxStopStringBytes = 512;
constexpr int kMaxBatchPrompts = 64;  // completions with a list of prompts

// Ranges of every SamplingParams field; `vocab_size` bounds stop_token_ids.
void validate_sampling(const SamplingParams& s, int vocab_size);

// Token ids of a prompt: non-empty and inside the vocabulary.
void validate_prompt_tokens(const std::vector<int32_t>& ids, int vocab_size,
                            const std::string& param);

// max_tokens for a prompt of `prompt_len` tokens: the requested value must leave the whole
// sequence within max_model_len (400 naming `param` otherwise); without a request, the
// default is clipped to the room left (and a prompt with no room left is a 400 on `prompt`).
int resolve_max_tokens(int prompt_len, std::optional<int64_t> requested, int default_max,
                       int max_model_len, const std::string& param,
                       const std::string& prompt_param);

}  // namespace tessera
