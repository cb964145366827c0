// SentencePiece-style BPE against Google's sentencepiece library itself: a model trained by
// sentencepiece, exported as a GGUF `llama` vocab (pieces, scores, types), must give the ids of
// sentencepiece's own encode() (tests/golden/tokenizer_sentencepiece_ids.json).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/gguf_file.h"
#include "model/tokenizer.h"

namespace {

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";

nlohmann::json load(const std::string& name) {
  std::ifstream in(kGolden + name, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  return nlohmann::json::parse(buf.str());
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

}  // namespace

TEST_CASE("SentencePiece GGUF vocab matches the sentencepiece library", "[tokenizer][golden]") {
  INFO("needs the committed golden (scripts/make_tokenizer_golden.py)");  // missing: fail
  REQUIRE((std::filesystem::exists(kGolden + "tokenizer_sentencepiece_ids.json")));
  const auto gguf = tessera::GgufFile::open(kGolden + "tokenizer_sentencepiece.gguf");
  const auto tok = tessera::Tokenizer::from_gguf(*gguf);
  const auto doc = load("tokenizer_strings.json");
  const auto strings = doc.at("strings").get<std::vector<std::string>>();
  const auto golden = load("tokenizer_sentencepiece_ids.json");
  const auto& ids = golden.at("ids");
  REQUIRE(ids.size() == strings.size());
  size_t same = 0, total = 0, shown = 0;
  const auto expect = [&](const std::vector<int32_t>& got, const nlohmann::json& want, size_t i) {
    ++total;
    if (got == want.get<std::vector<int32_t>>()) {
      ++same;
    } else if (++shown <= 5) {
      UNSCOPED_INFO("mismatch on case " << i);
    }
  };
  for (size_t i = 0; i < strings.size(); ++i) {
    // sentencepiece parses no special tokens and adds no BOS by itself.
    expect(tok->encode(strings[i], false, false), ids[i], i);
  }
  const auto hex = doc.at("invalid_utf8_hex").get<std::vector<std::string>>();
  for (size_t i = 0; i < hex.size(); ++i) {
    expect(tok->encode(from_hex(hex[i]), false, false), golden.at("invalid_utf8_ids")[i], i);
  }
  const auto& decoded = golden.at("decoded_where_different");
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string key = std::to_string(i);
    const std::string want =
        decoded.contains(key) ? decoded.at(key).get<std::string>() : strings[i];
    ++total;
    if (tok->decode(ids[i].get<std::vector<int32_t>>(), false) == want) {
      ++same;
    } else if (++shown <= 8) {
      UNSCOPED_INFO("decode mismatch on string " << i);
    }
  }
  WARN("sentencepiece/gguf: " << same << " / " << total << " cases identical");
  CHECK(same == total);
}
