#include "server/openai_response.h"

#include <cstdio>

#include "model/tokenizer.h"

namespace tessera {

using json = nlohmann::json;

json Usage::to_json() const {
  json out = {{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
  if (spec_draft_tokens > 0)
    out["speculative"] = {{"draft_tokens", spec_draft_tokens},
                          {"accepted_tokens", spec_accepted_tokens}};
  return out;
}

void ChoiceOutput::add(const GenerationEvent& ev) {
  text += ev.text;
  token_ids.insert(token_ids.end(), ev.token_ids.begin(), ev.token_ids.end());
  logprobs.insert(logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
  if (ev.finish) {
    finish = ev.finish;
    error = ev.error;
    completion_tokens = std::max<int>(ev.completion_tokens, int(token_ids.size()));
    beam_score = ev.beam_score;
  }
}

const char* openai_finish_reason(FinishReason r) {
  return finish_reason_name(r);
}

bool is_valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string token_display(const Tokenizer& tok, int32_t id) {
  std::string bytes = tok.token_bytes(id);
  if (is_valid_utf8(bytes)) return bytes;
  std::string out = "bytes:";
  char buf[8];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "\\x%02x", c);
    out += buf;
  }
  return out;
}

namespace {

json byte_list(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(int(c));
  return out;
}

json completion_logprobs(const ResponseContext& ctx, const std::vector<TokenLogprob>& lps,
                         int* text_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const auto& lp : lps) {
    std::string t = token_display(*ctx.tokenizer, lp.token);
    tokens.push_back(t);
    token_logprobs.push_back(lp.logprob);
    json alts = json::object();
    for (const auto& [id, logprob] : lp.top) alts[token_display(*ctx.tokenizer, id)] = logprob;
    top.push_back(alts);
    offsets.push_back(*text_offset);
    *text_offset += int(ctx.tokenizer->token_bytes(lp.token).size());
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

json chat_logprobs(const ResponseContext& ctx, const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const auto& lp : lps) {
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) {
      top.push_back({{"token", token_display(*ctx.tokenizer, id)},
                     {"logprob", logprob},
                     {"bytes", byte_list(ctx.tokenizer->token_bytes(id))}});
    }
    content.push_back({{"token", token_display(*ctx.tokenizer, lp.token)},
                       {"logprob", lp.logprob},
                       {"bytes", byte_list(ctx.tokenizer->token_bytes(lp.token))},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json header(const ResponseContext& ctx, const char* object) {
  return {{"id", ctx.id}, {"object", object}, {"created", ctx.created}, {"model", ctx.model}};
}

json finish_json(const std::optional<FinishReason>& f) {
  return f ? json(openai_finish_reason(*f)) : json(nullptr);
}

}  // namespace

json logprobs_json(const ResponseContext& ctx, const std::vector<TokenLogprob>& lps,
                   int* text_offset) {
  if (!ctx.want_logprobs) return nullptr;
  if (ctx.kind == ApiKind::kChat) return chat_logprobs(ctx, lps);
  return completion_logprobs(ctx, lps, text_offset);
}

json make_response(const ResponseContext& ctx, const std::vector<ChoiceOutput>& choices,
                   const Usage& usage) {
  const bool chat = ctx.kind == ApiKind::kChat;
  json out = header(ctx, chat ? "chat.completion" : "text_completion");
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    int offset = 0;
    json choice = {{"index", int(i)},
                   {"logprobs", logprobs_json(ctx, c.logprobs, &offset)},
                   {"finish_reason", finish_json(c.finish)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    if (c.beam_score) choice["beam_score"] = *c.beam_score;
    arr.push_back(std::move(choice));
  }
  out["choices"] = std::move(arr);
  out["usage"] = usage.to_json();
  return out;
}

json make_chunk(const ResponseContext& ctx, int index, const GenerationEvent& ev, int* text_offset,
                bool with_usage_null) {
  const bool chat = ctx.kind == ApiKind::kChat;
  json out = header(ctx, chat ? "chat.completion.chunk" : "text_completion");
  json choice = {{"index", index},
                 {"logprobs", logprobs_json(ctx, ev.logprobs, text_offset)},
                 {"finish_reason", finish_json(ev.finish)}};
  if (chat) {
    choice["delta"] = ev.text.empty() && ev.finish ? json::object() : json{{"content", ev.text}};
  } else {
    choice["text"] = ev.text;
  }
  out["choices"] = json::array({std::move(choice)});
  if (with_usage_null) out["usage"] = nullptr;
  return out;
}

json make_role_chunk(const ResponseContext& ctx, int index, bool with_usage_null) {
  json out = header(ctx, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", index},
                                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", nullptr}}});
  if (with_usage_null) out["usage"] = nullptr;
  return out;
}

json make_usage_chunk(const ResponseContext& ctx, const Usage& usage) {
  json out = header(ctx, ctx.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage.to_json();
  return out;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace tessera
