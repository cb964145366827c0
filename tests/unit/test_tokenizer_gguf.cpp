// Tokenizer::from_gguf on the default model and on the small GGUF vocabularies written by
// scripts/make_tokenizer_golden.py; the ids must equal the HF goldens exactly.
#include <catch2/catch.hpp>

#include <filesystem>

#include "model/gguf_file.h"
#include "model/tokenizer.h"
#include "tests/unit/test_tokenizer_golden_check.h"

namespace {

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";

std::shared_ptr<tessera::Tokenizer> from_gguf(const std::string& path) {
  const auto gguf = tessera::GgufFile::open(path);
  return tessera::Tokenizer::from_gguf(*gguf);
}

}  // namespace

TEST_CASE("SmolLM2 GGUF tokenizer matches HF on the golden corpus", "[tokenizer][golden]") {
  const std::string path =
      std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  INFO("needs " << path << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(path)));
  const auto tok = from_gguf(path);
  CHECK(tok->vocab_size() == 49152);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  // <|im_end|> (EOS) and <|endoftext|> both end generation.
  CHECK(tok->stop_ids() == std::vector<int32_t>{0, 2});
  CHECK(tok->chat_template().find("SmolLM") != std::string::npos);
  tessera::test::check_golden(*tok, "tokenizer_smollm2_ids.json", "smollm2/gguf");
}

TEST_CASE("Llama-3-style GGUF vocab (pre=llama-bpe) matches HF", "[tokenizer][golden]") {
  tessera::test::check_golden(*from_gguf(kGolden + "tokenizer_llama3_style.gguf"),
                              "tokenizer_llama3_style_ids.json", "llama3-style/gguf");
}

TEST_CASE("Qwen2-style GGUF vocab (pre=qwen2) matches HF", "[tokenizer][golden]") {
  tessera::test::check_golden(*from_gguf(kGolden + "tokenizer_qwen2_style.gguf"),
                              "tokenizer_qwen2_style_ids.json", "qwen2-style/gguf");
}

TEST_CASE("SentencePiece GGUF vocab (model=llama, scores) matches HF", "[tokenizer][golden]") {
  tessera::test::check_golden(*from_gguf(kGolden + "tokenizer_spm.gguf"), "tokenizer_spm_ids.json",
                              "spm/gguf");
}
