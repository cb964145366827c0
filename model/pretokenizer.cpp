#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/pretokenizer.h"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace tessera {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

pcre2_code* as_code(void* p) {
  return static_cast<pcre2_code*>(p);
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

// PCRE2 quotes a literal between \Q and \E; a literal containing \E is split around it.
std::string quote_literal(const std::string& s) {
  std::string out = "\\Q";
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "\\E") == 0) {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out + "\\E";
}

SplitBehavior parse_behavior(const std::string& name) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw Error(ErrorKind::kUnsupported, "tokenizer.json: unknown split behavior '" + name + "'");
}

// Unicode's White_Space property: what \s means to Oniguruma, the engine HF tokenizers runs
// the models' regexes on. PCRE2's \s also takes U+180E (MONGOLIAN VOWEL SEPARATOR), so each
// \s and \S is rewritten to this explicit set before compiling.
constexpr const char* kWhiteSpaceSet =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

}  // namespace

std::string rewrite_whitespace_classes(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  bool in_quote = false;  // between \Q and \E everything is literal
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (in_quote) {
      if (c == '\\' && i + 1 < pattern.size() && pattern[i + 1] == 'E') in_quote = false;
      out.push_back(c);
      if (!in_quote) out.push_back(pattern[++i]);
      continue;
    }
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[++i];
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpaceSet) : "[" + std::string(kWhiteSpaceSet) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceSet) + "]";
      } else {
        if (n == 'Q') in_quote = true;
        out.push_back(c);
        out.push_back(n);
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

Regex::Regex(const std::string& source_pattern) : pattern_(source_pattern) {
  const std::string pattern = rewrite_whitespace_classes(source_pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_offset, nullptr);
  if (code == nullptr) {
    throw Error(ErrorKind::kCorruptFile, "pre-tokenizer regex /" + source_pattern +
                                             "/ does not compile at " + std::to_string(err_offset) +
                                             ": " + pcre2_message(err));
  }
  // JIT is an optimisation only: interpretation gives the same matches if it is unavailable.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

Regex::~Regex() {
  pcre2_code_free(as_code(code_));
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(as_code(code_), nullptr);
  if (md == nullptr) throw Error(ErrorKind::kInternal, "pcre2: out of memory");
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start < text.size()) {
    // The caller guarantees valid UTF-8 (text is sanitized first), so skip PCRE2's check.
    const int rc =
        pcre2_match(as_code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      throw Error(ErrorKind::kInternal, "pcre2 match failed: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out->emplace_back(b, e);
      start = e;
    } else {
      // An empty match makes no piece; step over one whole character.
      start = b + 1;
      while (start < text.size() && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  pcre2_match_data_free(md);
}

PreTokenizer PreTokenizer::from_gguf_pre(const std::string& name) {
  PreTokenizer pre;
  if (name == "gpt2" || name == "default" || name == "gpt-2" || name == "olmo" || name == "jais") {
    pre.add_byte_level_regex();
  } else if (name == "smollm" || name == "starcoder" || name == "refact") {
    // The HF originals run Digits(individual_digits=true) before the GPT-2 regex.
    pre.add_digits(true);
    pre.add_byte_level_regex();
  } else if (name == "llama-bpe" || name == "llama3" || name == "llama-v3" || name == "smaug-bpe") {
    pre.add_split(kLlama3Pattern, SplitBehavior::kIsolated, false);
    pre.set_ignore_merges(true);
  } else if (name == "qwen2" || name == "qwen2.5" || name == "deepseek-r1-qwen") {
    pre.add_split(kQwen2Pattern, SplitBehavior::kIsolated, false);
  } else {
    throw Error(ErrorKind::kUnsupported,
                "tokenizer.ggml.pre = '" + name +
                    "' is not supported (known: gpt2, smollm, starcoder, llama-bpe, qwen2)");
  }
  return pre;
}

PreTokenizer PreTokenizer::from_hf_json(const nlohmann::json& spec) {
  PreTokenizer pre;
  if (!spec.is_null()) pre.add_hf_step(spec);
  return pre;
}

void PreTokenizer::add_hf_step(const nlohmann::json& spec) {
  if (!spec.is_object() || !spec.contains("type")) {
    throw Error(ErrorKind::kCorruptFile, "tokenizer.json: pre_tokenizer without a type");
  }
  const std::string type = spec.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& sub : spec.at("pretokenizers")) add_hf_step(sub);
  } else if (type == "Split") {
    const auto& pattern = spec.at("pattern");
    std::string regex;
    if (pattern.contains("Regex")) {
      regex = pattern.at("Regex").get<std::string>();
    } else if (pattern.contains("String")) {
      regex = quote_literal(pattern.at("String").get<std::string>());
    } else {
      throw Error(ErrorKind::kCorruptFile,
                  "tokenizer.json: Split pattern is neither Regex nor String");
    }
    add_split(regex, parse_behavior(spec.at("behavior").get<std::string>()),
              spec.value("invert", false));
  } else if (type == "ByteLevel") {
    if (spec.value("add_prefix_space", false)) add_prefix_space_ = true;
    if (spec.value("use_regex", true)) add_byte_level_regex();
  } else if (type == "Digits") {
    add_digits(spec.value("individual_digits", false));
  } else {
    throw Error(ErrorKind::kUnsupported,
                "tokenizer.json: pre_tokenizer type '" + type + "' is not supported");
  }
}

void PreTokenizer::add_split(const std::string& pattern, SplitBehavior behavior, bool invert) {
  steps_.push_back(Step{std::make_shared<const Regex>(pattern), behavior, invert});
}

void PreTokenizer::add_byte_level_regex() {
  add_split(kGpt2Pattern, SplitBehavior::kIsolated, false);
}

// HF's Digits uses Rust's char::is_numeric, i.e. general categories Nd, Nl and No = \p{N}.
void PreTokenizer::add_digits(bool individual) {
  add_split(individual ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::kIsolated, false);
}

void PreTokenizer::apply(const Step& step, std::string_view piece,
                         std::vector<std::string_view>* out) {
  std::vector<std::pair<size_t, size_t>> matches;
  step.regex->find_all(piece, &matches);
  // Segments covering the piece: (begin, end, is_delimiter). With invert the matches are the
  // kept content and the gaps between them are the delimiters.
  struct Seg {
    size_t b, e;
    bool delim;
  };
  std::vector<Seg> segs;
  size_t cursor = 0;
  for (const auto& [b, e] : matches) {
    if (b > cursor) segs.push_back({cursor, b, step.invert});
    segs.push_back({b, e, !step.invert});
    cursor = e;
  }
  if (cursor < piece.size()) segs.push_back({cursor, piece.size(), step.invert});

  const auto emit = [&](size_t b, size_t e) {
    if (e > b) out->push_back(piece.substr(b, e - b));
  };
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : segs) emit(s.b, s.e);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : segs)
        if (!s.delim) emit(s.b, s.e);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      // A delimiter joins the piece before it.
      size_t b = 0;
      for (const auto& s : segs) {
        if (s.delim) {
          emit(b, s.e);
          b = s.e;
        }
      }
      emit(b, piece.size());
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      // A delimiter starts the piece after it.
      size_t b = 0;
      for (const auto& s : segs) {
        if (s.delim) {
          emit(b, s.b);
          b = s.b;
        }
      }
      emit(b, piece.size());
      break;
    }
    case SplitBehavior::kContiguous: {
      // Runs of adjacent delimiters become one piece.
      size_t i = 0;
      while (i < segs.size()) {
        size_t j = i + 1;
        if (segs[i].delim) {
          while (j < segs.size() && segs[j].delim) ++j;
        }
        emit(segs[i].b, segs[j - 1].e);
        i = j;
      }
      break;
    }
  }
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const Step& step : steps_) {
    next.clear();
    for (const auto piece : pieces) apply(step, piece, &next);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace tessera
