// ModelConfig from GGUF metadata: the default model, Llama-3 scaling stored as
// rope_freqs.weight, and errors for missing keys or other architectures.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "model/gguf_config.h"
#include "model/gguf_file.h"
#include "model/gguf_writer.h"

using tessera::GgufFile;
using tessera::GgufWriter;
using tessera::ModelConfig;

namespace {

const std::string kModel =
    std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A tiny llama GGUF: 2 layers, hidden 64, 4 heads (head_dim 16), 2 KV heads.
GgufWriter tiny_llama(bool with_output, uint32_t kv_heads = 2) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "tiny");
  w.set_u32("llama.block_count", 2);
  w.set_u32("llama.embedding_length", 64);
  w.set_u32("llama.feed_forward_length", 96);
  w.set_u32("llama.attention.head_count", 4);
  w.set_u32("llama.attention.head_count_kv", kv_heads);
  w.set_u32("llama.context_length", 512);
  w.set_f32("llama.rope.freq_base", 500000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_string_array("tokenizer.ggml.tokens", std::vector<std::string>(100, "t"));
  w.add_tensor("token_embd.weight", {64, 100}, 0, std::vector<uint8_t>(64 * 100 * 4, 0));
  if (with_output) {
    w.add_tensor("output.weight", {64, 100}, 0, std::vector<uint8_t>(64 * 100 * 4, 0));
  }
  return w;
}

// Meta's Llama-3 rule, written out per band: high frequencies keep their value, low ones
// are divided by the factor, the band between is interpolated in 1 / divisor.
std::vector<float> llama3_divisors(double theta, int dim, double factor, double orig_ctx) {
  std::vector<float> out;
  for (int i = 0; i < dim / 2; ++i) {
    const double freq = 1.0 / std::pow(theta, (2.0 * i) / dim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < orig_ctx / 4.0) {
      out.push_back(1.0f);
    } else if (wavelen > orig_ctx / 1.0) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (orig_ctx / wavelen - 1.0) / (4.0 - 1.0);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("GGUF config: default model", "[model_config][gguf]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  const ModelConfig c = tessera::model_config_from_gguf(*GgufFile::open(kModel));
  CHECK(c.architecture == "llama");
  CHECK(c.vocab_size == 49152);
  CHECK(c.hidden_size == 576);
  CHECK(c.intermediate_size == 1536);
  CHECK(c.num_layers == 30);
  CHECK(c.num_heads == 9);
  CHECK(c.num_kv_heads == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.max_position_embeddings == 8192);
  CHECK(c.rms_norm_eps == Approx(1e-5f));
  CHECK(c.rope.theta == 100000.0f);
  CHECK_FALSE(c.rope.neox);  // llama.cpp stores Q/K rows permuted for adjacent pairs
  CHECK(c.rope.rotary_dim == 0);
  CHECK(c.rope.scaling_factor == 0.0f);
  CHECK(c.tied_embeddings);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_id == 2);
  CHECK(c.num_parameters() == 134515008LL);
}

TEST_CASE("GGUF config: tiny model, untied, explicit key_length", "[model_config][gguf]") {
  GgufWriter w = tiny_llama(true);
  const auto g_bytes = w.build();  // the file views these bytes
  auto g = GgufFile::parse(g_bytes, "tiny.gguf");
  ModelConfig c = tessera::model_config_from_gguf(*g);
  CHECK_FALSE(c.tied_embeddings);
  CHECK(c.vocab_size == 100);
  CHECK(c.head_dim == 16);
  CHECK(c.num_kv_heads == 2);
  CHECK(c.rms_norm_eps == Approx(1e-6f));

  GgufWriter w2 = tiny_llama(false);
  w2.set_u32("llama.attention.key_length", 32);
  w2.set_u32("llama.attention.value_length", 32);
  w2.set_u32("llama.rope.dimension_count", 16);
  const auto g2_bytes = w2.build();  // the file views these bytes
  auto g2 = GgufFile::parse(g2_bytes, "tiny.gguf");
  c = tessera::model_config_from_gguf(*g2);
  CHECK(c.tied_embeddings);
  CHECK(c.head_dim == 32);
  CHECK(c.rope.rotary_dim == 16);
}

TEST_CASE("GGUF config: Llama-3 scaling from rope_freqs.weight", "[model_config][gguf]") {
  GgufWriter w = tiny_llama(true);
  const auto divisors = llama3_divisors(500000.0, 16, 8.0, 8192.0);
  CHECK(divisors.front() == 1.0f);
  CHECK(divisors.back() == 8.0f);
  w.add_tensor("rope_freqs.weight", {8}, 0, f32_bytes(divisors));
  const auto g_bytes = w.build();  // the file views these bytes
  auto g = GgufFile::parse(g_bytes, "tiny.gguf");
  const ModelConfig c = tessera::model_config_from_gguf(*g);
  CHECK(c.rope.scaling_factor == 8.0f);
  CHECK(c.rope.low_freq_factor == 1.0f);
  CHECK(c.rope.high_freq_factor == 4.0f);
  CHECK(c.rope.original_max_position == 8192);

  // Divisors that no Llama-3 parameter set produces are refused, not approximated.
  auto odd = divisors;
  odd[3] *= 1.5f;
  GgufWriter w2 = tiny_llama(true);
  w2.add_tensor("rope_freqs.weight", {8}, 0, f32_bytes(odd));
  const auto g2_bytes = w2.build();  // the file views these bytes
  auto g2 = GgufFile::parse(g2_bytes, "tiny.gguf");
  try {
    tessera::model_config_from_gguf(*g2);
    FAIL("odd rope_freqs accepted");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kUnsupported);
    CHECK(std::string(e.what()).find("rope_freqs.weight") != std::string::npos);
  }
}

TEST_CASE("GGUF config: errors", "[model_config][gguf]") {
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  const auto g_bytes = w.build();  // the file views these bytes
  auto g = GgufFile::parse(g_bytes, "q.gguf");
  try {
    tessera::model_config_from_gguf(*g);
    FAIL("qwen2 accepted");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kUnsupported);
    CHECK(std::string(e.what()).find("qwen2") != std::string::npos);
    CHECK(std::string(e.what()).find("q.gguf") != std::string::npos);
  }
  GgufWriter w2;
  w2.set_string("general.architecture", "llama");
  w2.set_u32("llama.block_count", 2);
  const auto g2_bytes = w2.build();  // the file views these bytes
  auto g2 = GgufFile::parse(g2_bytes, "m.gguf");
  try {
    tessera::model_config_from_gguf(*g2);
    FAIL("missing keys accepted");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kCorruptFile);
    CHECK(std::string(e.what()).find("llama.embedding_length") != std::string::npos);
  }
  GgufWriter w3 = tiny_llama(true);
  w3.set_string("llama.rope.scaling.type", "yarn");
  const auto g3_bytes = w3.build();  // the file views these bytes
  auto g3 = GgufFile::parse(g3_bytes, "y.gguf");
  CHECK_THROWS_WITH(tessera::model_config_from_gguf(*g3), Catch::Contains("yarn"));
  GgufWriter w4 = tiny_llama(true, 3);  // 4 heads are not a multiple of 3
  const auto g4_bytes = w4.build();  // the file views these bytes
  auto g4 = GgufFile::parse(g4_bytes, "k.gguf");
  CHECK_THROWS_WITH(tessera::model_config_from_gguf(*g4), Catch::Contains("k.gguf"));
}
