// Hostile input: random bytes (mostly invalid UTF-8) never crash encode, the ids decode back
// to the sanitized text, and concurrent encodes (shared merge cache) agree with serial ones.
#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include "model/tokenizer.h"
#include "model/unicode.h"

namespace {

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";

std::string random_bytes(std::mt19937& rng, size_t max_len) {
  static const std::vector<std::string> pieces = {
      "a",    " ",        "  ",           "\n",   "\t",
      "7",    "42",       "'s",           "é",    "東",
      "😀",    "\u200d",   "<|im_start|>", "<s>",  "\xff",
      "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\x80", "\xed\xa0\x80",
      "\x00"};
  std::string s;
  const size_t n = rng() % max_len;
  for (size_t i = 0; i < n; ++i) {
    if (rng() % 4 == 0) {
      s.push_back(static_cast<char>(rng() & 0xFF));
    } else {
      s += pieces[rng() % pieces.size()];
    }
  }
  return s;
}

}  // namespace

TEST_CASE("random bytes never crash encode and round-trip through decode", "[tokenizer]") {
  for (const char* file :
       {"tokenizer_qwen2_style.json", "tokenizer_llama3_style.json", "tokenizer_spm.json"}) {
    const auto tok = tessera::Tokenizer::from_hf_files(kGolden + file, "");
    const bool spm = std::string(file) == "tokenizer_spm.json";
    std::mt19937 rng(11);
    for (int trial = 0; trial < 2000; ++trial) {
      const std::string text = random_bytes(rng, 40);
      const auto ids = tok->encode(text, false, false);
      for (const int32_t id : ids) REQUIRE((id >= 0 && id < tok->vocab_size()));
      // Without special parsing every byte of the sanitized text is kept by these vocabs
      // (the SPM decode drops the one '▁' it put in front).
      std::string want = tessera::sanitize_utf8(text);
      INFO(file << " trial " << trial);
      if (!spm) CHECK(tok->decode(ids, false) == want);
      CHECK(tessera::is_valid_utf8(tok->decode(ids, false)));
      (void)tok->encode(text, true, true);
    }
  }
}

TEST_CASE("concurrent encodes agree with serial ones", "[tokenizer]") {
  const auto tok = tessera::Tokenizer::from_hf_files(kGolden + "tokenizer_qwen2_style.json", "");
  std::mt19937 rng(5);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(random_bytes(rng, 60));
  std::vector<std::vector<int32_t>> serial;
  for (const auto& t : texts) serial.push_back(tok->encode(t, false, true));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (tok->encode(texts[(i + w * 37) % texts.size()], false, true) !=
              serial[(i + w * 37) % texts.size()]) {
            ++bad[w];
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == std::vector<int>(4, 0));
}
