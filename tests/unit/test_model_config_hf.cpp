// ModelConfig from HF config.json: the shipped configs/models shapes, their published
// parameter counts, both RoPE key layouts (transformers 4 and 5) and clear errors.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/model_config.h"

using nlohmann::json;
using tessera::ModelConfig;

namespace {

json read(const std::string& rel) {
  std::ifstream f(std::string(TESSERA_SOURCE_DIR) + "/" + rel);
  REQUIRE(f.good());
  return json::parse(f);
}

std::string error_of(const json& j) {
  try {
    ModelConfig::from_hf_json(j).validate();
  } catch (const tessera::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("model config: Llama-3.1-8B shape", "[model_config]") {
  const ModelConfig c = ModelConfig::from_hf_json(read("configs/models/llama-3.1-8b.json"));
  c.validate();
  CHECK(c.vocab_size == 128256);
  CHECK(c.hidden_size == 4096);
  CHECK(c.num_layers == 32);
  CHECK(c.num_heads == 32);
  CHECK(c.num_kv_heads == 8);
  CHECK(c.head_dim == 128);
  CHECK(c.max_position_embeddings == 131072);
  CHECK(c.rope.theta == 500000.0f);
  CHECK(c.rope.neox);
  CHECK(c.rope.scaling_factor == 8.0f);
  CHECK(c.rope.low_freq_factor == 1.0f);
  CHECK(c.rope.high_freq_factor == 4.0f);
  CHECK(c.rope.original_max_position == 8192);
  CHECK_FALSE(c.tied_embeddings);
  CHECK(c.bos_token_id == 128000);
  CHECK(c.num_parameters() == 8030261248LL);  // Meta's published count
  CHECK(c.kv_bytes_per_token(2) == 131072u);  // 2 * 32 layers * 8 heads * 128 * 2 bytes
}

TEST_CASE("model config: Llama-3.1-70B and SmolLM2-135M shapes", "[model_config]") {
  const ModelConfig big = ModelConfig::from_hf_json(read("configs/models/llama-3.1-70b.json"));
  big.validate();
  CHECK(big.num_layers == 80);
  CHECK(big.head_dim == 128);
  CHECK(big.num_parameters() == 70553706496LL);
  CHECK(big.kv_bytes_per_token(2) == 327680u);

  const ModelConfig small = ModelConfig::from_hf_json(read("configs/models/smollm2-135m.json"));
  small.validate();
  CHECK(small.tied_embeddings);
  CHECK(small.head_dim == 64);
  CHECK(small.rope.theta == 100000.0f);
  CHECK(small.rope.scaling_factor == 0.0f);
  CHECK(small.num_parameters() == 134515008LL);  // HF's count for SmolLM2-135M
  CHECK(small.kv_bytes_per_token(4) == 2u * 30 * 3 * 64 * 4);
}

TEST_CASE("model config: transformers 5 rope_parameters and eos lists", "[model_config]") {
  json j = read("configs/models/llama-3.1-8b.json");
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 250000.0},  {"rope_type", "llama3"},
                          {"factor", 32.0},          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  j["eos_token_id"] = {128001, 128008, 128009};
  ModelConfig c = ModelConfig::from_hf_json(j);
  CHECK(c.rope.theta == 250000.0f);
  CHECK(c.rope.scaling_factor == 32.0f);
  CHECK(c.eos_token_id == 128001);

  j["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
  c = ModelConfig::from_hf_json(j);
  CHECK(c.rope.theta == 10000.0f);
  CHECK(c.rope.scaling_factor == 0.0f);
}

TEST_CASE("model config: defaults for optional keys", "[model_config]") {
  json j = {{"vocab_size", 1000},
            {"hidden_size", 64},
            {"intermediate_size", 128},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4}};
  const ModelConfig c = ModelConfig::from_hf_json(j);
  c.validate();
  CHECK(c.num_kv_heads == 4);
  CHECK(c.head_dim == 16);
  CHECK(c.rope.theta == 10000.0f);
  CHECK_FALSE(c.tied_embeddings);
}

TEST_CASE("model config: errors name the key", "[model_config]") {
  const json base = read("configs/models/smollm2-135m.json");
  json j = base;
  j.erase("hidden_size");
  CHECK(error_of(j).find("'hidden_size' is missing") != std::string::npos);
  j = base;
  j["num_hidden_layers"] = "thirty";
  CHECK(error_of(j).find("'num_hidden_layers' must be an integer") != std::string::npos);
  j = base;
  j["num_key_value_heads"] = 4;  // 9 heads are not a multiple of 4
  CHECK(error_of(j).find("num_kv_heads") != std::string::npos);
  j = base;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  try {
    ModelConfig::from_hf_json(j);
    FAIL("yarn accepted");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kUnsupported);
    CHECK(std::string(e.what()).find("yarn") != std::string::npos);
  }
  j = base;
  j["model_type"] = "qwen2";
  CHECK(error_of(j).find("qwen2") != std::string::npos);
  j = base;
  j["rms_norm_eps"] = -1;
  CHECK(error_of(j).find("rms_norm_eps") != std::string::npos);
  CHECK(error_of(json::array()).find("JSON object") != std::string::npos);
}
