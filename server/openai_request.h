#pragma once
// Parsing and validation of OpenAI request bodies (/v1/completions, /v1/chat/completions)
// into engine requests. Throws ApiError naming the offending field; nothing invalid reaches
// the engine. Unknown fields are ignored (clients send many), known ones we cannot honour
// (echo, suffix, tools, logit_bias, ...) are rejected rather than silently dropped.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "model/chat_template.h"

namespace tessera {

class Tokenizer;

enum class ApiKind { kCompletion, kChat };

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;                          // the served model's name
  std::vector<std::vector<int32_t>> prompts;  // completions may batch; chat has one
  SamplingParams sampling;
  int priority = 0;                   // extension; higher runs first
  std::optional<int64_t> timeout_ms;  // extension: deadline relative to arrival
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool want_logprobs = false;  // completions logprobs>=0 / chat logprobs=true
};

struct ParseContext {
  std::string served_model;
  const Tokenizer* tokenizer = nullptr;
  int max_model_len = 0;
  // Renders chat messages into prompt text with the model's template.
  std::function<std::string(const std::vector<ChatMessage>&, bool add_generation_prompt)>
      render_chat;
};

OpenAiRequest parse_completion_request(const nlohmann::json& body, const ParseContext& ctx);
OpenAiRequest parse_chat_request(const nlohmann::json& body, const ParseContext& ctx);

// Chat messages: [{"role": ..., "content": string | [{"type": "text", "text": ...}] | null}].
std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages);

// 404 model_not_found unless `model` (when present) names the served model.
void check_model(const nlohmann::json& body, const std::string& served_model);

}  // namespace tessera
