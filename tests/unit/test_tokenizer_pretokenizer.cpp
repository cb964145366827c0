// Pre-tokenizer splitting rules, loader errors and speed on long inputs.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"

#include <nlohmann/json.hpp>

namespace {

using tessera::PreTokenizer;
using tessera::SplitBehavior;

std::vector<std::string> pieces(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> out;
  for (const auto p : pre.split(text)) out.emplace_back(p);
  return out;
}

std::string write_temp(const std::string& name, const std::string& body) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << body;
  return path.string();
}

}  // namespace

TEST_CASE("SmolLM2 pre-tokenizer isolates every digit before the GPT-2 regex", "[tokenizer]") {
  const auto pre = PreTokenizer::from_gguf_pre("smollm");
  using V = std::vector<std::string>;
  CHECK(pieces(pre, "abc 123") == V{"abc", " ", "1", "2", "3"});
  CHECK(pieces(pre, "I'm 2x") == V{"I", "'m", " ", "2", "x"});
  CHECK(pieces(pre, "a  b") == V{"a", " ", " b"});            // \s+(?!\S) leaves the last space
  CHECK(pieces(pre, "½ and Ⅷ") == V{"½", " and", " ", "Ⅷ"});  // \p{N}: Nd, Nl and No
  const auto gpt2 = PreTokenizer::from_gguf_pre("gpt2");
  CHECK(pieces(gpt2, "abc 123") == V{"abc", " 123"});
}

TEST_CASE("Llama-3 pre-tokenizer groups digits by three, case-insensitive contractions",
          "[tokenizer]") {
  const auto pre = PreTokenizer::from_gguf_pre("llama-bpe");
  using V = std::vector<std::string>;
  CHECK(pieces(pre, "1234567") == V{"123", "456", "7"});
  CHECK(pieces(pre, "WE'LL") == V{"WE", "'LL"});
  CHECK(pieces(pre, "x\n\n  y") == V{"x", "\n\n", " ", " y"});
  CHECK(pre.ignore_merges());
}

TEST_CASE("\\s means Unicode White_Space (U+180E is not a space)", "[tokenizer]") {
  CHECK(tessera::rewrite_whitespace_classes(R"(a\sb)").find("\\x{3000}") != std::string::npos);
  CHECK(tessera::rewrite_whitespace_classes(R"([\s\d])").front() == '[');
  CHECK(tessera::rewrite_whitespace_classes(R"(\Q\s\E)") == R"(\Q\s\E)");
  PreTokenizer pre;
  pre.add_split(R"(\s+)", SplitBehavior::kRemoved, false);
  using V = std::vector<std::string>;
  CHECK(pieces(pre, "a\u3000b\u180Ec") == V{"a", "b\u180Ec"});
}

TEST_CASE("split behaviours follow HF tokenizers", "[tokenizer]") {
  using V = std::vector<std::string>;
  const auto with = [](SplitBehavior b, bool invert = false) {
    PreTokenizer pre;
    pre.add_split("-", b, invert);
    return pre;
  };
  CHECK(pieces(with(SplitBehavior::kIsolated), "a--b-") == V{"a", "-", "-", "b", "-"});
  CHECK(pieces(with(SplitBehavior::kRemoved), "a--b-") == V{"a", "b"});
  CHECK(pieces(with(SplitBehavior::kMergedWithPrevious), "a--b-") == V{"a-", "-", "b-"});
  CHECK(pieces(with(SplitBehavior::kMergedWithNext), "a--b-") == V{"a", "-", "-b", "-"});
  CHECK(pieces(with(SplitBehavior::kContiguous), "a--b-") == V{"a", "--", "b", "-"});
  CHECK(pieces(with(SplitBehavior::kRemoved, true), "a--b-") == V{"-", "-", "-"});
}

TEST_CASE("bad tokenizer files fail with a clear error", "[tokenizer]") {
  using tessera::Error;
  using tessera::Tokenizer;
  CHECK_THROWS_AS(PreTokenizer::from_gguf_pre("no-such-pre"), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_files("/nonexistent/tokenizer.json", ""), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_files(write_temp("tessera_bad1.json", "{not json"), ""),
                  Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_files(
                      write_temp("tessera_bad2.json", R"({"model": {"type": "WordPiece"}})"), ""),
                  Error);
  // A merge naming a token that is not in the vocabulary.
  CHECK_THROWS_AS(
      Tokenizer::from_hf_files(
          write_temp("tessera_bad3.json",
                     R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]},
                                     "pre_tokenizer": {"type": "ByteLevel"}})"),
          ""),
      Error);
  // A bad regex in a Split pre-tokenizer.
  CHECK_THROWS_AS(Tokenizer::from_hf_files(
                      write_temp("tessera_bad4.json",
                                 R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                                       {"type": "Split", "pattern": {"Regex": "(unclosed"},
                                        "behavior": "Isolated", "invert": false},
                                       {"type": "ByteLevel", "use_regex": false}]}})"),
                      ""),
                  Error);
  try {
    Tokenizer::from_hf_files(write_temp("tessera_bad2.json", R"({"model": {"type": "WordPiece"}})"),
                             "");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("WordPiece") != std::string::npos);
  }
}

TEST_CASE("encoding 100 KB inputs is fast", "[tokenizer][perf]") {
  const std::string path =
      std::string(TESSERA_SOURCE_DIR) + "/tests/golden/tokenizer_qwen2_style.json";
  const auto tok = tessera::Tokenizer::from_hf_files(path, "");
  std::string prose, one_word(100000, 'a'), spaces(100000, ' '), digits;
  while (prose.size() < 100000) prose += "The quick brown fox, 2024 — naïve café 東京 😀 jumps.\n";
  while (digits.size() < 100000) digits += "31415926535897932384626433832795 ";
  for (const std::string* text : {&prose, &one_word, &spaces, &digits}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(*text, false, true);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    WARN("encode " << text->size() << " bytes -> " << ids.size() << " ids in " << ms << " ms");
    CHECK(!ids.empty());
    CHECK(tok->decode(ids, false) == *text);
    // Generous bound for a loaded 2-core CI machine; typical is a few ms.
    CHECK(ms < 2000);
  }
}

TEST_CASE("Metaspace prepend schemes match HF around specials and leading spaces",
          "[tokenizer][golden]") {
  const std::string dir = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";
  const auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const auto strings = read(dir + "tokenizer_strings.json").at("strings");
  const auto golden = read(dir + "tokenizer_spm_metaspace_ids.json");
  const auto cases = golden.at("cases").get<std::vector<size_t>>();
  for (const std::string scheme : {"always", "first"}) {
    // The same edit the golden script made: Metaspace instead of Prepend+Replace.
    auto spec = read(dir + "tokenizer_spm.json");
    spec["normalizer"] = nullptr;
    spec["pre_tokenizer"] = {{"type", "Metaspace"},
                             {"replacement", "\u2581"},
                             {"prepend_scheme", scheme},
                             {"split", false}};
    const auto tok = tessera::Tokenizer::from_hf_files(
        write_temp("tessera_metaspace_" + scheme + ".json", spec.dump()), "");
    size_t same = 0;
    for (size_t k = 0; k < cases.size(); ++k) {
      const auto text = strings.at(cases[k]).get<std::string>();
      const auto want = golden.at(scheme).at(k).get<std::vector<int32_t>>();
      if (tok->encode(text, false, true) == want) {
        ++same;
      } else {
        UNSCOPED_INFO(scheme << " mismatch on string " << cases[k]);
      }
    }
    WARN("metaspace/" << scheme << ": " << same << " / " << cases.size() << " identical");
    CHECK(same == cases.size());
  }
}
