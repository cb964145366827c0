// Tokenizer ids against goldens produced by scripts/make_tokenizer_golden.py from Hugging Face
// `tokenizers` (never from Tessera): SmolLM2 (GGUF vocab, true digit-splitting pre-tokenizer),
// Llama-3-style and Qwen2-style byte-level BPE, SentencePiece-style BPE.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "tests/unit/test_tokenizer_golden_check.h"

namespace {

using nlohmann::json;
using tessera::Tokenizer;

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";
const std::string kModels = std::string(TESSERA_SOURCE_DIR) + "/models/";

json load_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  return json::parse(buf.str());
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < ids.size() && i < 40; ++i) s << (i ? "," : "") << ids[i];
  s << (ids.size() > 40 ? ",...]" : "]");
  return s.str();
}

// JSON-quoted, with bytes of a cut character replaced.
std::string printable(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// std::string operator+ chains trip a GCC 12 -Wrestrict false positive; stream instead.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

}  // namespace

// Compares every golden case; reports the count and the first mismatches.
void tessera::test::check_golden(const Tokenizer& tok, const std::string& ids_file,
                                 const std::string& label) {
  const json strings_doc = load_json(kGolden + "tokenizer_strings.json");
  const auto strings = strings_doc.at("strings").get<std::vector<std::string>>();
  const json golden = load_json(kGolden + ids_file);
  const auto& ids = golden.at("ids");
  REQUIRE(ids.size() == strings.size());

  size_t checked = 0, mismatched = 0;
  const auto expect = [&](const std::vector<int32_t>& got, const json& want,
                          const std::string& what) {
    ++checked;
    if (got != want.get<std::vector<int32_t>>()) {
      if (++mismatched <= 5) {
        UNSCOPED_INFO(label << " mismatch on " << what << "\n  got  " << show(got) << "\n  want "
                            << show(want.get<std::vector<int32_t>>()));
      }
    }
  };
  for (size_t i = 0; i < strings.size(); ++i) {
    expect(tok.encode(strings[i], false, true), ids[i],
           cat("string ", i, " ", printable(strings[i].substr(0, 60))));
  }
  for (const auto& [idx, want] : golden.at("ids_no_parse_special").items()) {
    expect(tok.encode(strings[std::stoul(idx)], false, false), want,
           cat("no-parse-special string ", idx));
  }
  const auto& with_special = golden.at("ids_add_special_first64");
  for (size_t i = 0; i < with_special.size(); ++i) {
    expect(tok.encode(strings[i], true, true), with_special[i], cat("add-special string ", i));
  }
  const auto hex = strings_doc.at("invalid_utf8_hex").get<std::vector<std::string>>();
  const auto& invalid = golden.at("invalid_utf8_ids");
  for (size_t i = 0; i < hex.size(); ++i) {
    expect(tok.encode(from_hex(hex[i]), false, true), invalid[i], cat("invalid UTF-8 case ", i));
  }
  // Decode: the input back, except where the reference's decode differs (then its output).
  const auto& decoded_diff = golden.at("decoded_where_different");
  size_t decode_mismatch = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const auto want = decoded_diff.contains(std::to_string(i))
                          ? decoded_diff.at(std::to_string(i)).get<std::string>()
                          : strings[i];
    const auto got = tok.decode(ids[i].get<std::vector<int32_t>>(), false);
    ++checked;
    if (got != want && ++decode_mismatch <= 3) {
      UNSCOPED_INFO(label << " decode mismatch on string " << i << ": got " << printable(got)
                          << " want " << printable(want));
    }
  }
  const auto& skip_diff = golden.at("decoded_skip_special_where_different_first400");
  for (size_t i = 0; i < 400 && i < strings.size(); ++i) {
    const auto want = skip_diff.contains(std::to_string(i))
                          ? skip_diff.at(std::to_string(i)).get<std::string>()
                          : strings[i];
    ++checked;
    if (tok.decode(ids[i].get<std::vector<int32_t>>(), true) != want && ++decode_mismatch <= 6) {
      UNSCOPED_INFO(label << " skip-special decode mismatch on string " << i);
    }
  }
  WARN(label << ": " << (checked - mismatched - decode_mismatch) << " / " << checked
             << " golden cases identical (" << strings.size() << " strings)");
  CHECK(mismatched == 0);
  CHECK(decode_mismatch == 0);
}

using tessera::test::check_golden;

TEST_CASE("SmolLM2 reference tokenizer.json loads and matches", "[tokenizer][golden]") {
  const std::string path = kModels + "smollm2-reference-tokenizer.json";
  INFO("needs " << path << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(path)));
  check_golden(*Tokenizer::from_hf_files(path, ""), "tokenizer_smollm2_ids.json", "smollm2/json");
}

TEST_CASE("Llama-3-style byte-level BPE matches HF", "[tokenizer][golden]") {
  check_golden(*Tokenizer::from_hf_files(kGolden + "tokenizer_llama3_style.json", ""),
               "tokenizer_llama3_style_ids.json", "llama3-style/json");
}

TEST_CASE("Qwen2-style byte-level BPE matches HF", "[tokenizer][golden]") {
  check_golden(*Tokenizer::from_hf_files(kGolden + "tokenizer_qwen2_style.json", ""),
               "tokenizer_qwen2_style_ids.json", "qwen2-style/json");
}

TEST_CASE("SentencePiece-style BPE matches HF", "[tokenizer][golden]") {
  check_golden(*Tokenizer::from_hf_files(kGolden + "tokenizer_spm.json", ""),
               "tokenizer_spm_ids.json", "spm/json");
}
