#pragma once
// Chat templates without a Jinja engine: the family is recognised from the model's template
// source (GGUF `tokenizer.chat_template` or tokenizer_config.json) and rendered in C++,
// byte-identical to what jinja2 / transformers' apply_chat_template produce for it.
//   ChatML (SmolLM2, Qwen2, ...): <|im_start|>{role}\n{content}<|im_end|>\n per message; a
//     default system prompt written in the template is inserted when the conversation does
//     not start with a system message (SmolLM2: "You are a helpful AI assistant named
//     SmolLM, trained by Hugging Face").
//   Llama-3: {bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>.
//   Llama-3.1+ (templates with "Cutting Knowledge Date"): Llama-3 turns after a system turn
//     that always carries the knowledge and current dates; tool results go in an "ipython"
//     turn as JSON (no tool definitions or tool calls: those are rejected upstream).
// Render the result with Tokenizer::encode(text, add_special=false, parse_special=true): the
// template already holds the BOS a model wants.
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ... (passed through as is)
  std::string content;
};

enum class ChatFormat { kChatML, kLlama3, kLlama31 };

class ChatTemplate {
 public:
  // Recognises the family in `jinja_source`. An empty or unrecognised source gives plain
  // ChatML (recognized() is false then, so a caller can warn).
  static ChatTemplate from_source(std::string_view jinja_source, std::string bos_token);
  // The tokenizer's own template and BOS text.
  static ChatTemplate for_tokenizer(const Tokenizer& tok);

  std::string apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  ChatFormat format() const { return format_; }
  bool recognized() const { return recognized_; }
  // ChatML only: the system prompt used when the conversation has none ("" if the template
  // inserts none).
  const std::string& default_system() const { return default_system_; }
  const char* name() const;

 private:
  std::string apply_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  std::string apply_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  std::string apply_llama31(std::span<const ChatMessage> messages,
                            bool add_generation_prompt) const;

  ChatFormat format_ = ChatFormat::kChatML;
  bool recognized_ = false;
  std::string default_system_;
  std::string bos_token_;
  bool llama3_bos_ = true;   // the Llama-3 template starts with bos_token
  std::string date_string_;  // Llama-3.1: "Today Date: ..." (the template's default)
};

}  // namespace tessera
