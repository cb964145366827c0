#include "server/openai_request.h"

#include <limits>

#include "model/tokenizer.h"
#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/request_validation.h"

namespace tessera {
namespace {

using json = nlohmann::json;
namespace jf = json_fields;

constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int kDefaultCompletionMaxTokens = 16;  // OpenAI's default for /v1/completions

ApiError unsupported(const std::string& param, const std::string& why) {
  return ApiError(400, "invalid_request_error", "'" + param + "' " + why, param, "unsupported");
}

// vLLM's beam search fields: use_beam_search, best_of (the beam width; n when absent),
// length_penalty, early_stopping (true, false or "never"). Their combinations with the
// sampling knobs are checked by the engine (engine/request_validation.cpp).
void parse_beam_search(const json& body, SamplingParams& s) {
  if (auto v = jf::get_bool(body, "use_beam_search")) s.use_beam_search = *v;
  if (auto v = jf::get_int(body, "best_of", 1, kMaxChoices)) {
    if (!s.use_beam_search && *v != s.n) {
      throw unsupported("best_of",
                        "must equal n without use_beam_search (best-of sampling is not "
                        "supported)");
    }
    if (*v < s.n) throw invalid_param("best_of", "must be >= n");
    s.best_of = int(*v);
  }
  if (auto v = jf::get_number(body, "length_penalty")) s.length_penalty = static_cast<float>(*v);
  if (auto it = body.find("early_stopping"); it != body.end() && !it->is_null()) {
    if (it->is_boolean()) {
      s.early_stopping = it->get<bool>() ? EarlyStopping::kFirst : EarlyStopping::kHeuristic;
    } else if (it->is_string() && it->get<std::string>() == "never") {
      s.early_stopping = EarlyStopping::kNever;
    } else {
      throw invalid_param("early_stopping", "must be true, false or \"never\"");
    }
  }
}

// Fields shared by both endpoints: sampling knobs, stop conditions, extensions, streaming.
void parse_common(const json& body, OpenAiRequest& r) {
  SamplingParams& s = r.sampling;
  if (auto v = jf::get_number(body, "temperature")) s.temperature = static_cast<float>(*v);
  if (auto v = jf::get_number(body, "top_p")) s.top_p = static_cast<float>(*v);
  if (auto v = jf::get_int(body, "top_k", -1, kI32Max)) s.top_k = *v < 0 ? 0 : int(*v);
  if (auto v = jf::get_number(body, "min_p")) s.min_p = static_cast<float>(*v);
  if (auto v = jf::get_number(body, "presence_penalty")) s.presence_penalty = float(*v);
  if (auto v = jf::get_number(body, "frequency_penalty")) s.frequency_penalty = float(*v);
  if (auto v = jf::get_number(body, "repetition_penalty")) s.repetition_penalty = float(*v);
  if (auto v = jf::get_int(body, "seed", kI64Min, kI64Max)) s.seed = static_cast<uint64_t>(*v);
  if (auto v = jf::get_int(body, "n", 1, kMaxChoices)) s.n = int(*v);
  parse_beam_search(body, s);
  s.stop = jf::get_string_or_list(body, "stop");
  s.stop_token_ids = jf::get_int_list(body, "stop_token_ids");
  if (auto v = jf::get_bool(body, "ignore_eos")) s.ignore_eos = *v;
  if (auto v = jf::get_bool(body, "skip_special_tokens")) s.skip_special_tokens = *v;
  if (auto v = jf::get_int(body, "priority", -kI32Max, kI32Max)) r.priority = int(*v);
  if (auto v = jf::get_int(body, "timeout_ms", 1, int64_t(24) * 3600 * 1000)) r.timeout_ms = *v;

  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw invalid_param("logit_bias", "must be an object");
    if (!it->empty()) throw unsupported("logit_bias", "is not supported");
  }
  if (auto v = jf::get_bool(body, "stream")) r.stream = *v;
  if (r.stream && s.use_beam_search) {
    throw unsupported("stream",
                      "is not supported with use_beam_search (beams are only final "
                      "at the end; send stream=false)");
  }
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw invalid_param("stream_options", "must be an object");
    if (!r.stream) throw invalid_param("stream_options", "is only allowed when 'stream' is true");
    if (auto v = jf::get_bool(*it, "include_usage")) r.include_usage = *v;
  }
}

// The requested model must be the one served (or absent).
std::string model_of(const json& body, const std::string& served) {
  check_model(body, served);
  return served;
}

std::vector<int32_t> encode_text(const ParseContext& ctx, const std::string& text, bool add_special,
                                 const std::string& param) {
  std::vector<int32_t> ids = ctx.tokenizer->encode(text, add_special, /*parse_special=*/true);
  if (ids.empty()) throw invalid_param(param, "must not be empty");
  return ids;
}

std::vector<std::vector<int32_t>> parse_prompts(const json& body, const ParseContext& ctx) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) {
    throw ApiError(400, "invalid_request_error", "'prompt' is required", "prompt",
                   "missing_required_parameter");
  }
  const json& p = *it;
  const int vocab = ctx.tokenizer->vocab_size();
  std::vector<std::vector<int32_t>> out;
  if (p.is_string()) {
    out.push_back(encode_text(ctx, p.get<std::string>(), true, "prompt"));
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    out.push_back(json_fields::to_token_ids(p, "prompt"));
  } else if (p.is_array() && !p.empty()) {
    if (p.size() > size_t(kMaxBatchPrompts)) {
      throw invalid_param("prompt",
                          "at most " + std::to_string(kMaxBatchPrompts) + " prompts per request");
    }
    for (const auto& e : p) {
      if (e.is_string()) {
        out.push_back(encode_text(ctx, e.get<std::string>(), true, "prompt"));
      } else if (e.is_array()) {
        out.push_back(json_fields::to_token_ids(e, "prompt"));
      } else {
        throw invalid_param("prompt",
                            "must be a string, an array of strings, an array of token "
                            "ids or an array of token-id arrays");
      }
    }
  } else if (p.is_array()) {
    throw invalid_param("prompt", "must not be empty");
  } else {
    throw invalid_param("prompt",
                        "must be a string, an array of strings, an array of token ids "
                        "or an array of token-id arrays");
  }
  for (const auto& ids : out) validate_prompt_tokens(ids, vocab, "prompt");
  return out;
}

}  // namespace

void check_model(const json& body, const std::string& served_model) {
  auto model = jf::get_string(body, "model");
  if (model && *model != served_model) {
    throw ApiError(
        404, "invalid_request_error",
        "The model '" + *model + "' does not exist (this server serves '" + served_model + "')",
        "model", "model_not_found");
  }
}

OpenAiRequest parse_completion_request(const json& body, const ParseContext& ctx) {
  jf::require_object(body, "request body");
  OpenAiRequest r;
  r.kind = ApiKind::kCompletion;
  r.model = model_of(body, ctx.served_model);
  if (auto v = jf::get_bool(body, "echo"); v && *v) throw unsupported("echo", "is not supported");
  if (auto v = jf::get_string(body, "suffix"); v && !v->empty()) {
    throw unsupported("suffix", "is not supported");
  }
  parse_common(body, r);
  if (auto v = jf::get_int(body, "logprobs", 0, kMaxLogprobs)) {
    r.sampling.logprobs = int(*v);
    r.want_logprobs = true;
  }
  auto max_tokens = jf::get_int(body, "max_tokens", kI64Min, kI64Max);
  r.prompts = parse_prompts(body, ctx);
  validate_sampling(r.sampling, ctx.tokenizer->vocab_size());
  // Every prompt must fit; the batch shares one max_tokens (the smallest room decides).
  int resolved = std::numeric_limits<int>::max();
  for (const auto& p : r.prompts) {
    resolved = std::min(resolved,
                        resolve_max_tokens(int(p.size()), max_tokens, kDefaultCompletionMaxTokens,
                                           ctx.max_model_len, "max_tokens", "prompt"));
  }
  r.sampling.max_tokens = resolved;
  return r;
}

std::vector<ChatMessage> parse_chat_messages(const json& messages) {
  if (!messages.is_array() || messages.empty()) {
    throw invalid_param("messages", "must be a non-empty array");
  }
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw invalid_param(where, "must be an object");
    ChatMessage msg;
    auto role = jf::get_string(m, "role");
    if (!role) throw invalid_param(where + ".role", "is required");
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "developer") {
      throw invalid_param(
          where + ".role",
          "must be one of system, developer, user, assistant (got '" + *role + "')");
    }
    msg.role = *role == "developer" ? "system" : *role;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (msg.role != "assistant") throw invalid_param(where + ".content", "is required");
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      // Content parts: only text parts can be served by a text model.
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        const std::string pw = where + ".content[" + std::to_string(j) + "]";
        if (!part.is_object()) throw invalid_param(pw, "must be an object");
        auto type = jf::get_string(part, "type");
        if (!type || *type != "text") {
          throw unsupported(pw + ".type", "must be 'text' (this model reads text only)");
        }
        auto text = jf::get_string(part, "text");
        if (!text) throw invalid_param(pw + ".text", "is required");
        msg.content += *text;
      }
    } else {
      throw invalid_param(where + ".content", "must be a string or an array of content parts");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

OpenAiRequest parse_chat_request(const json& body, const ParseContext& ctx) {
  jf::require_object(body, "request body");
  OpenAiRequest r;
  r.kind = ApiKind::kChat;
  r.model = model_of(body, ctx.served_model);
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) {
    throw ApiError(400, "invalid_request_error", "'messages' is required", "messages",
                   "missing_required_parameter");
  }
  std::vector<ChatMessage> messages = parse_chat_messages(*it);
  if (auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) throw invalid_param("tools", "must be an array");
    if (!t->empty()) throw unsupported("tools", "tool calling is not supported");
  }
  if (auto rf = body.find("response_format"); rf != body.end() && !rf->is_null()) {
    if (!rf->is_object()) throw invalid_param("response_format", "must be an object");
    auto type = jf::get_string(*rf, "type");
    if (type && *type != "text") {
      throw unsupported("response_format", "only {\"type\": \"text\"} is supported");
    }
  }
  parse_common(body, r);
  bool logprobs = jf::get_bool(body, "logprobs").value_or(false);
  auto top = jf::get_int(body, "top_logprobs", 0, kMaxLogprobs);
  if (top && !logprobs) throw invalid_param("top_logprobs", "requires 'logprobs' to be true");
  if (logprobs) {
    r.sampling.logprobs = int(top.value_or(0));
    r.want_logprobs = true;
  }
  bool add_generation_prompt = jf::get_bool(body, "add_generation_prompt").value_or(true);

  // max_completion_tokens supersedes the deprecated max_tokens.
  const char* max_param = "max_completion_tokens";
  auto max_tokens = jf::get_int(body, "max_completion_tokens", kI64Min, kI64Max);
  if (!max_tokens) {
    max_param = "max_tokens";
    max_tokens = jf::get_int(body, "max_tokens", kI64Min, kI64Max);
  }
  std::string text = ctx.render_chat(messages, add_generation_prompt);
  // The template already spells out BOS and role markers: no extra special tokens.
  std::vector<int32_t> ids = encode_text(ctx, text, /*add_special=*/false, "messages");
  r.prompts.push_back(std::move(ids));
  validate_sampling(r.sampling, ctx.tokenizer->vocab_size());
  r.sampling.max_tokens =
      resolve_max_tokens(int(r.prompts[0].size()), max_tokens, ctx.max_model_len, ctx.max_model_len,
                         max_param, "messages");
  return r;
}

}  // namespace tessera
