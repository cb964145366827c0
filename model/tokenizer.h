#pragma once
// Tokenizers: byte-level BPE (GPT-2 family: SmolLM2, Llama-3, Qwen2) with the model's
// pre-tokenizer regex, and SentencePiece-style BPE (GGUF `llama` vocab, Llama-2 family).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  static std::shared_ptr<Tokenizer> from_gguf(const GgufFile& gguf);
  // tokenizer.json (+ optional tokenizer_config.json for BOS/EOS rules and chat template).
  static std::shared_ptr<Tokenizer> from_hf_files(const std::string& tokenizer_json_path,
                                                  const std::string& tokenizer_config_path);

  // add_special: prepend BOS / append EOS as the model's rules say.
  // parse_special: text like "<|im_start|>" becomes its special token id.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Raw bytes of one token as it appears in decoded text (may be a partial UTF-8 sequence).
  virtual std::string token_bytes(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Whole-sequence decode; bytes that are not valid UTF-8 become U+FFFD. Throws
  // Error(kInvalidArgument) for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;

  int vocab_size() const { return vocab_size_; }
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  // Ids that end generation (EOS and end-of-turn tokens such as <|im_end|>, <|eot_id|>).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  const std::string& chat_template() const { return chat_template_; }
  // Looks up a token by its exact text; -1 if absent.
  virtual int32_t token_id(std::string_view text) const = 0;

 protected:
  int vocab_size_ = 0;
  int bos_id_ = -1;
  int eos_id_ = -1;
  std::vector<int32_t> stop_ids_;
  std::string chat_template_;
  // SentencePiece vocabularies put a '▁' before the text; decode() removes that one space.
  bool decode_strips_leading_space_ = false;
};

// Streaming detokenizer: push ids one by one, get text that is safe to emit (complete UTF-8
// characters only; a character split across tokens is emitted once, whole). Bytes that can
// never become a character are emitted as U+FFFD at once, so the concatenation of every
// push() and the final flush() equals decode() of the same ids (without the leading-space
// strip of SentencePiece vocabularies: a continuation keeps its first space).
// Not thread-safe: one decoder per sequence.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_(skip_special) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is pending, invalid bytes replaced by U+FFFD

 private:
  const Tokenizer& tok_;
  bool skip_;
  std::string pending_;
};

}  // namespace tessera
