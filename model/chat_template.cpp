#include "model/chat_template.h"

#include <ctime>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "model/unicode.h"

namespace tessera {

namespace {

// Characters Python's str.strip() removes (str.isspace()): what Jinja's `trim` filter strips.
bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string jinja_trim(std::string_view s) {
  size_t begin = 0, end = s.size();
  uint32_t cp = 0;
  size_t bad = 0;
  while (begin < end) {
    const size_t n = decode_utf8(s, begin, &cp, &bad);
    if (n == 0 || !is_python_space(cp)) break;
    begin += n;
  }
  // Walk back over whole characters: find the start of the last one each time.
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    const size_t n = decode_utf8(s, start, &cp, &bad);
    if (n == 0 || start + n != end || !is_python_space(cp)) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

// Reads the Jinja string literal text that follows `marker` at `at` up to `terminator`,
// turning the escapes Jinja understands in literals (\n, \t, \', \", \\) into their characters.
// Returns false when the text is not a plain literal (it has a quote or a Jinja expression).
bool literal_at(std::string_view src, size_t at, std::string_view marker,
                std::string_view terminator, std::string* out) {
  size_t i = at + marker.size();
  // The newline after the role may be written as a real newline or as the escape "\n".
  if (i < src.size() && src[i] == '\n') {
    i += 1;
  } else if (src.substr(i, 2) == "\\n") {
    i += 2;
  } else {
    return false;
  }
  const size_t stop = src.find(terminator, i);
  if (stop == std::string_view::npos) return false;
  std::string text;
  for (size_t k = i; k < stop; ++k) {
    const char c = src[k];
    if (c == '\'' || c == '"' || c == '{' || c == '}') return false;
    if (c == '\\' && k + 1 < stop) {
      const char e = src[++k];
      text.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
    } else {
      text.push_back(c);
    }
  }
  *out = std::move(text);
  return true;
}

// The first occurrence of `marker` followed by a plain literal up to `terminator`.
bool find_literal(std::string_view src, std::string_view marker, std::string_view terminator,
                  std::string* out) {
  for (size_t at = src.find(marker); at != std::string_view::npos; at = src.find(marker, at + 1)) {
    if (literal_at(src, at, marker, terminator, out)) return true;
  }
  return false;
}

// The date a Llama-3.1+ template puts in "Today Date:". Llama-3.1 writes a fixed default
// (`set date_string = "26 Jul 2024"`); Llama-3.2+ asks transformers for today via
// strftime_now("%d %b %Y").
std::string llama31_date(std::string_view src) {
  if (src.find("strftime_now") != std::string_view::npos) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%d %b %Y", &tm);
    return buf;
  }
  constexpr std::string_view kKey = "date_string = \"";
  const size_t at = src.find(kKey);
  if (at != std::string_view::npos) {
    const size_t end = src.find('"', at + kKey.size());
    if (end != std::string_view::npos)
      return std::string(src.substr(at + kKey.size(), end - at - kKey.size()));
  }
  return "26 Jul 2024";
}

// transformers replaces Jinja's tojson with json.dumps(x, ensure_ascii=False): only quotes,
// backslashes and control characters are escaped.
std::string tojson_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

ChatTemplate ChatTemplate::from_source(std::string_view src, std::string bos_token) {
  ChatTemplate t;
  t.bos_token_ = std::move(bos_token);
  if (src.find("<|start_header_id|>") != std::string_view::npos) {
    t.format_ = ChatFormat::kLlama3;
    t.recognized_ = true;
    if (src.find("Cutting Knowledge Date") != std::string_view::npos) {
      t.format_ = ChatFormat::kLlama31;
      t.date_string_ = llama31_date(src);
    }
    t.llama3_bos_ = src.find("bos_token") != std::string_view::npos ||
                    src.find("<|begin_of_text|>") != std::string_view::npos;
    return t;
  }
  t.format_ = ChatFormat::kChatML;
  if (src.find("<|im_start|>") != std::string_view::npos) {
    t.recognized_ = true;
    // A default system prompt is a literal system turn in the template (SmolLM2, Qwen2);
    // the turn built from message['content'] is not a literal and is skipped by the parser.
    std::string system;
    if (find_literal(src, "<|im_start|>system", "<|im_end|>", &system)) t.default_system_ = system;
  }
  return t;
}

ChatTemplate ChatTemplate::for_tokenizer(const Tokenizer& tok) {
  const std::string bos = tok.bos_id() >= 0 ? tok.token_bytes(tok.bos_id()) : std::string();
  return from_source(tok.chat_template(), bos);
}

const char* ChatTemplate::name() const {
  switch (format_) {
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kLlama31:
      return "llama3.1";
    case ChatFormat::kChatML:
      break;
  }
  return "chatml";
}

std::string ChatTemplate::apply(std::span<const ChatMessage> messages,
                                bool add_generation_prompt) const {
  switch (format_) {
    case ChatFormat::kLlama3:
      return apply_llama3(messages, add_generation_prompt);
    case ChatFormat::kLlama31:
      return apply_llama31(messages, add_generation_prompt);
    case ChatFormat::kChatML:
      break;
  }
  return apply_chatml(messages, add_generation_prompt);
}

std::string ChatTemplate::apply_chatml(std::span<const ChatMessage> messages,
                                       bool add_generation_prompt) const {
  std::string out;
  const auto turn = [&](std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  // As in the templates: the default goes in only before a first message that is not system.
  if (!default_system_.empty() && !messages.empty() && messages[0].role != "system") {
    turn("system", default_system_);
  }
  for (const ChatMessage& m : messages) turn(m.role, m.content);
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

std::string ChatTemplate::apply_llama3(std::span<const ChatMessage> messages,
                                       bool add_generation_prompt) const {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && llama3_bos_) out.append(bos_token_);
    out.append("<|start_header_id|>").append(messages[i].role).append("<|end_header_id|>\n\n");
    out.append(jinja_trim(messages[i].content)).append("<|eot_id|>");
  }
  if (add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

std::string ChatTemplate::apply_llama31(std::span<const ChatMessage> messages,
                                        bool add_generation_prompt) const {
  std::string out = bos_token_;
  // A leading system message moves into the dated system turn, which is always there.
  std::string system;
  if (!messages.empty() && messages[0].role == "system") {
    system = jinja_trim(messages[0].content);
    messages = messages.subspan(1);
  }
  out.append("<|start_header_id|>system<|end_header_id|>\n\n");
  out.append("Cutting Knowledge Date: December 2023\nToday Date: ").append(date_string_);
  out.append("\n\n").append(system).append("<|eot_id|>");
  for (const ChatMessage& m : messages) {
    if (m.role == "tool" || m.role == "ipython") {
      // A string is "iterable" to Jinja, so the template JSON-encodes tool output.
      out.append("<|start_header_id|>ipython<|end_header_id|>\n\n");
      out.append(tojson_string(m.content)).append("<|eot_id|>");
    } else {
      out.append("<|start_header_id|>").append(m.role).append("<|end_header_id|>\n\n");
      out.append(jinja_trim(m.content)).append("<|eot_id|>");
    }
  }
  if (add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

}  // namespace tessera
