#pragma once
// OpenAI response bodies and SSE chunks built from engine events. Choice indices are global
// across a batched completion: prompt p, sample i -> index p * n + i.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "server/openai_request.h"

namespace tessera {

class Tokenizer;

struct ResponseContext {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;  // cmpl-... / chatcmpl-...
  int64_t created = 0;
  std::string model;
  const Tokenizer* tokenizer = nullptr;
  bool want_logprobs = false;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
  // Speculative decoding (an extension): proposed tokens verified, and accepted; reported
  // as usage.speculative when any were proposed.
  int spec_draft_tokens = 0;
  int spec_accepted_tokens = 0;
  nlohmann::json to_json() const;
};

// One choice's output, accumulated from its events (non-streaming responses).
struct ChoiceOutput {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;
  std::optional<FinishReason> finish;
  std::string error;
  int completion_tokens = 0;
  std::optional<double> beam_score;  // use_beam_search: reported as the choice's "beam_score"
  void add(const GenerationEvent& ev);
};

// "stop" / "length" as OpenAI spells them; other reasons by their engine name.
const char* openai_finish_reason(FinishReason r);

// Token text for logprobs: the token's bytes when they are valid UTF-8, else "bytes:\xNN..".
std::string token_display(const Tokenizer& tok, int32_t id);
bool is_valid_utf8(const std::string& s);

// Logprobs for a run of tokens; `text_offset` (completions) is advanced past their text.
nlohmann::json logprobs_json(const ResponseContext& ctx, const std::vector<TokenLogprob>& lps,
                             int* text_offset);

nlohmann::json make_response(const ResponseContext& ctx, const std::vector<ChoiceOutput>& choices,
                             const Usage& usage);
// A stream chunk for one event; `with_usage_null` adds "usage": null (include_usage streams).
nlohmann::json make_chunk(const ResponseContext& ctx, int index, const GenerationEvent& ev,
                          int* text_offset, bool with_usage_null);
// Chat streams open each choice with a chunk carrying the assistant role.
nlohmann::json make_role_chunk(const ResponseContext& ctx, int index, bool with_usage_null);
nlohmann::json make_usage_chunk(const ResponseContext& ctx, const Usage& usage);

// JSON text safe for the wire: invalid UTF-8 can never throw here (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace tessera
