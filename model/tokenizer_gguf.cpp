// Tokenizer::from_gguf: reads the `tokenizer.ggml.*` metadata into a TokenizerSpec.
#include "common/error.h"
#include "model/gguf_file.h"
#include "model/tokenizer.h"
#include "model/tokenizer_spec.h"

namespace tessera {

namespace {

int32_t optional_id(const GgufFile& gguf, const std::string& key) {
  const auto v = gguf.get_int(key);
  return v ? static_cast<int32_t>(*v) : -1;
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
  TokenizerSpec spec;
  spec.source = gguf.path();
  const auto model = gguf.get_string("tokenizer.ggml.model");
  if (!model) {
    throw Error(ErrorKind::kCorruptFile, gguf.path() + ": no tokenizer.ggml.model key");
  }
  spec.tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  if (gguf.has("tokenizer.ggml.token_type")) {
    for (const int64_t t : gguf.get_int_array("tokenizer.ggml.token_type")) {
      // Unknown type codes are treated as normal tokens rather than rejected.
      spec.types.push_back(t >= 1 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kNormal);
    }
  }
  if (*model == "gpt2") {
    spec.kind = TokenizerKind::kByteLevelBpe;
    for (const std::string& m : gguf.get_string_array("tokenizer.ggml.merges")) {
      const size_t space = m.find(' ');
      if (space == std::string::npos) {
        throw Error(ErrorKind::kCorruptFile,
                    gguf.path() + ": tokenizer.ggml.merges entry '" + m + "' has no space");
      }
      spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    spec.pre = PreTokenizer::from_gguf_pre(gguf.get_string("tokenizer.ggml.pre").value_or("gpt2"));
  } else if (*model == "llama") {
    spec.kind = TokenizerKind::kSpmBpe;
    for (const double s : gguf.get_float_array("tokenizer.ggml.scores")) {
      spec.scores.push_back(static_cast<float>(s));
    }
    spec.add_space_prefix = gguf.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  } else {
    throw Error(ErrorKind::kUnsupported, gguf.path() + ": tokenizer.ggml.model = '" + *model +
                                             "' is not supported (gpt2 and llama are)");
  }
  spec.bos_id = optional_id(gguf, "tokenizer.ggml.bos_token_id");
  spec.eos_id = optional_id(gguf, "tokenizer.ggml.eos_token_id");
  spec.unk_id = optional_id(gguf, "tokenizer.ggml.unknown_token_id");
  spec.eot_id = optional_id(gguf, "tokenizer.ggml.eot_token_id");
  spec.eom_id = optional_id(gguf, "tokenizer.ggml.eom_token_id");
  // llama.cpp's defaults: SentencePiece vocabularies add BOS unless told otherwise.
  spec.add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").value_or(*model == "llama");
  spec.add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  spec.chat_template = gguf.get_string("tokenizer.chat_template").value_or("");
  return make_tokenizer(std::move(spec));
}

}  // namespace tessera
