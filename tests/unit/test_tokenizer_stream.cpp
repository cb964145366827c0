// UTF-8 helpers, streaming detokenization and decode on a small byte-level vocabulary.
#include <catch2/catch.hpp>

#include <random>

#include "common/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_spec.h"
#include "model/unicode.h"

namespace {

using tessera::IncrementalDecoder;
using tessera::Tokenizer;

// A byte-level vocabulary of the 256 single bytes plus two specials: every byte string is
// encodable, so tokens can split characters anywhere.
std::shared_ptr<Tokenizer> byte_vocab() {
  tessera::TokenizerSpec spec;
  spec.source = "test";
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(tessera::byte_level_encode(std::string(1, static_cast<char>(b))));
    spec.types.push_back(tessera::TokenType::kNormal);
  }
  spec.tokens.push_back("<|im_start|>");
  spec.types.push_back(tessera::TokenType::kControl);
  spec.tokens.push_back("<|im_end|>");
  spec.types.push_back(tessera::TokenType::kControl);
  spec.eos_id = 257;
  spec.pre.add_byte_level_regex();
  return tessera::make_tokenizer(std::move(spec));
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip,
                   std::vector<std::string>* pieces = nullptr) {
  IncrementalDecoder dec(tok, skip);
  std::string all;
  for (const int32_t id : ids) {
    const std::string p = dec.push(id);
    if (pieces) pieces->push_back(p);
    all += p;
  }
  const std::string tail = dec.flush();
  if (pieces) pieces->push_back(tail);
  return all + tail;
}

}  // namespace

TEST_CASE("sanitize_utf8 replaces maximal ill-formed subparts like Python", "[tokenizer]") {
  using tessera::sanitize_utf8;
  // Expected strings are Python's bytes.decode("utf-8", "replace").
  CHECK(sanitize_utf8("abc") == "abc");
  CHECK(sanitize_utf8("\xff") == "\xEF\xBF\xBD");
  CHECK(sanitize_utf8("caf\xc3") == "caf\xEF\xBF\xBD");
  CHECK(sanitize_utf8("\xe2\x82 euro") == "\xEF\xBF\xBD euro");    // one U+FFFD for E2 82
  CHECK(sanitize_utf8("\xc0\xaf") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  CHECK(sanitize_utf8("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(sanitize_utf8("\xf4\x90\x80\x80") ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // above U+10FFFF
  CHECK(sanitize_utf8("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");
  CHECK(tessera::utf8_complete_prefix("ab\xf0\x9f\x98") == 2);
  CHECK(tessera::utf8_complete_prefix("ab\xff") == 3);  // never completes: no waiting
  CHECK(tessera::utf8_complete_prefix("\xe4\xbd\xa0") == 3);
}

TEST_CASE("byte-level table round-trips all 256 bytes", "[tokenizer]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  REQUIRE(tessera::byte_level_decode(tessera::byte_level_encode(all), &back));
  CHECK(back == all);
  CHECK(tessera::byte_level_encode(" ") == "\xC4\xA0");            // 'Ġ'
  CHECK_FALSE(tessera::byte_level_decode("\xE2\x96\x81", &back));  // '▁' is not in the table
}

TEST_CASE("incremental decoder emits a split character once, whole", "[tokenizer]") {
  const auto tok = byte_vocab();
  // "é😀" as single-byte tokens: nothing is emitted until each character is complete.
  const std::string text = "a\xc3\xa9\xf0\x9f\x98\x80!";
  std::vector<int32_t> ids;
  for (const char c : text) ids.push_back(static_cast<uint8_t>(c));
  std::vector<std::string> pieces;
  CHECK(stream(*tok, ids, false, &pieces) == text);
  REQUIRE(pieces.size() == ids.size() + 1);
  CHECK(pieces[0] == "a");
  CHECK(pieces[1].empty());
  CHECK(pieces[2] == "\xc3\xa9");
  CHECK(pieces[3].empty());
  CHECK(pieces[4].empty());
  CHECK(pieces[5].empty());
  CHECK(pieces[6] == "\xf0\x9f\x98\x80");
  CHECK(pieces[7] == "!");
  CHECK(pieces[8].empty());
}

TEST_CASE("incremental decoding equals decode() on random byte streams", "[tokenizer]") {
  const auto tok = byte_vocab();
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet = {
      "a",    " ",    "\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80",
      "\xff", "\x80", "\xe2\x82", "\xf0\x9f"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) bytes += alphabet[rng() % alphabet.size()];
    std::vector<int32_t> ids;
    for (const char c : bytes) ids.push_back(static_cast<uint8_t>(c));
    if (rng() % 3 == 0) ids.insert(ids.begin() + static_cast<long>(rng() % (ids.size() + 1)), 256);
    for (const bool skip : {false, true}) {
      const std::string whole = tok->decode(ids, skip);
      CHECK(tessera::is_valid_utf8(whole));
      CHECK(stream(*tok, ids, skip) == whole);
    }
  }
  // Dangling bytes at the end become one U+FFFD at flush.
  CHECK(stream(*tok, {0xf0, 0x9f}, false) == "\xEF\xBF\xBD");
}

TEST_CASE("special tokens: skip, stop ids, parse_special, bad ids", "[tokenizer]") {
  const auto tok = byte_vocab();
  CHECK(tok->is_special(256));
  CHECK_FALSE(tok->is_special(65));
  CHECK(tok->token_id("<|im_end|>") == 257);
  CHECK(tok->token_id("nope") == -1);
  // EOS and the end-of-turn marker both stop generation.
  CHECK(tok->stop_ids() == std::vector<int32_t>{257});
  const std::vector<int32_t> ids = {256, 'h', 'i', 257};
  CHECK(tok->decode(ids, false) == "<|im_start|>hi<|im_end|>");
  CHECK(tok->decode(ids, true) == "hi");
  CHECK(tok->encode("<|im_start|>hi", false, true) == std::vector<int32_t>{256, 'h', 'i'});
  CHECK(tok->encode("<|im_start|>", false, false).size() == 12);
  const std::vector<int32_t> bad = {5, 999999};
  CHECK_THROWS_AS(tok->decode(bad, false), tessera::Error);
  CHECK_THROWS_AS(tok->token_bytes(-1), tessera::Error);
}
