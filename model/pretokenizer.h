#pragma once
// Pre-tokenization: cuts text into pieces before BPE runs on each piece, the way Hugging Face
// `tokenizers` pre-tokenizers do (Split, Digits, ByteLevel, Sequence), with PCRE2 in UTF +
// Unicode-property mode. A piece never crosses a cut made by an earlier step.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tessera {

// What happens to regex matches when splitting (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A compiled PCRE2 pattern (UTF, UCP, JIT when available). Thread-safe to use concurrently.
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends [begin, end) of every non-empty match in `text` (valid UTF-8) to `out`.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so callers need no PCRE2 headers
};

class PreTokenizer {
 public:
  PreTokenizer() = default;

  // Presets named by GGUF `tokenizer.ggml.pre` (gpt2, smollm, llama-bpe/llama3, qwen2, ...).
  // Throws Error(kUnsupported) for names it does not know.
  static PreTokenizer from_gguf_pre(const std::string& name);
  // A tokenizer.json "pre_tokenizer" object (null means no pre-tokenization).
  static PreTokenizer from_hf_json(const nlohmann::json& spec);

  void add_split(const std::string& pattern, SplitBehavior behavior, bool invert);
  // GPT-2's pattern, the one HF's ByteLevel pre-tokenizer applies when use_regex is true.
  void add_byte_level_regex();
  void add_digits(bool individual);

  // Pieces of `text` (valid UTF-8), in order, as views into `text`.
  std::vector<std::string_view> split(std::string_view text) const;

  // HF ByteLevel(add_prefix_space): a space is put before text that does not start with one.
  bool add_prefix_space() const { return add_prefix_space_; }
  // Llama-3 style vocabularies take a piece that is a whole token as is (HF ignore_merges).
  bool ignore_merges() const { return ignore_merges_; }
  void set_ignore_merges(bool v) { ignore_merges_ = v; }
  size_t num_steps() const { return steps_.size(); }

 private:
  struct Step {
    std::shared_ptr<const Regex> regex;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  void add_hf_step(const nlohmann::json& spec);
  static void apply(const Step& step, std::string_view piece, std::vector<std::string_view>* out);

  std::vector<Step> steps_;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
};

// Rewrites \s and \S to Unicode White_Space (Oniguruma's meaning) for PCRE2; exposed for tests.
std::string rewrite_whitespace_classes(const std::string& pattern);

// Regexes of well-known pre-tokenizers, exactly as the models' tokenizer.json files give them.
extern const char* const kGpt2Pattern;
extern const char* const kLlama3Pattern;
extern const char* const kQwen2Pattern;

}  // namespace tessera
