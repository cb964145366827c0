// The GGUF loader and the HF-folder loader give the same model: the folder is written by
// scripts/convert_gguf_to_hf.py through transformers' own GGUF reader (an independent
// dequantizer and Q/K un-permutation), so agreement checks our dequantization, our
// dims -> [rows, cols] mapping and the RoPE layout flag together.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "kernels/dequant.h"
#include "model/loader.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace {

const std::string kRoot = TESSERA_SOURCE_DIR;
const std::string kGguf = kRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kHf = kRoot + "/models/smollm2-hf";

// llama.cpp stores each head's Q/K rows as interleaved pairs (x0, y0, x1, y1, ...) where HF
// keeps halves (x0, x1, ..., y0, y1, ...): GGUF row h*d + 2i + j is HF row h*d + j*d/2 + i.
int64_t hf_row_of_gguf_row(int64_t row, int head_dim) {
  const int64_t h = row / head_dim, r = row % head_dim;
  return h * head_dim + (r % 2) * (head_dim / 2) + r / 2;
}

}  // namespace

TEST_CASE("loader: GGUF and converted HF folder hold the same weights", "[loader][hf]") {
  INFO("needs " << kHf << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kGguf) && std::filesystem::exists(kHf + "/model.safetensors")));
  const tessera::LoadedModel g = tessera::load_model(kGguf);
  const tessera::LoadedModel h = tessera::load_model(kHf);

  CHECK_FALSE(g.config.rope.neox);
  CHECK(h.config.rope.neox);
  CHECK(g.config.vocab_size == h.config.vocab_size);
  CHECK(g.config.hidden_size == h.config.hidden_size);
  CHECK(g.config.intermediate_size == h.config.intermediate_size);
  CHECK(g.config.num_layers == h.config.num_layers);
  CHECK(g.config.num_heads == h.config.num_heads);
  CHECK(g.config.num_kv_heads == h.config.num_kv_heads);
  CHECK(g.config.head_dim == h.config.head_dim);
  CHECK(g.config.max_position_embeddings == h.config.max_position_embeddings);
  CHECK(g.config.rope.theta == h.config.rope.theta);
  CHECK(g.config.rms_norm_eps == h.config.rms_norm_eps);
  CHECK(g.config.tied_embeddings == h.config.tied_embeddings);
  CHECK(g.config.bos_token_id == h.config.bos_token_id);
  CHECK(g.config.eos_token_id == h.config.eos_token_id);
  REQUIRE(g.weights.tensors.size() == h.weights.tensors.size());

  const int head_dim = g.config.head_dim;
  double max_abs = 0.0;
  int64_t compared = 0;
  for (const auto& [name, gt] : g.weights.tensors) {
    INFO(name);
    REQUIRE(h.weights.has(name));
    const tessera::HostTensor& ht = h.weights.get(name);
    REQUIRE(ht.dtype == tessera::DType::kF32);
    REQUIRE(gt.rows == ht.rows);
    REQUIRE(gt.cols == ht.cols);
    const std::vector<float> a = tessera::dequantize_tensor(gt);
    const auto* b = static_cast<const float*>(ht.data);
    const bool permuted =
        name.find("attn_q.") != std::string::npos || name.find("attn_k.") != std::string::npos;
    int64_t mismatches = 0;
    for (int64_t r = 0; r < gt.rows; ++r) {
      const int64_t hr = permuted ? hf_row_of_gguf_row(r, head_dim) : r;
      for (int64_t c = 0; c < gt.cols; ++c) {
        const double x = a[r * gt.cols + c], y = b[hr * gt.cols + c];
        const double diff = std::fabs(x - y);
        max_abs = std::max(max_abs, diff);
        // Both sides compute q * d + m in f32; a fused multiply-add may move the last bit.
        mismatches += diff > 1e-6 * std::fabs(y) + 1e-9;
      }
    }
    compared += gt.rows * gt.cols;
    REQUIRE(mismatches == 0);
  }
  CHECK(compared == g.config.num_parameters());

  // Both tokenizers (GGUF vocab with pre = smollm; tokenizer.json with Digits + ByteLevel)
  // give the same ids, digits split one by one.
  REQUIRE(g.tokenizer != nullptr);
  REQUIRE(h.tokenizer != nullptr);
  CHECK(g.tokenizer->eos_id() == h.tokenizer->eos_id());
  for (const char* text : {"Hello world! 12345 apples", "<|im_start|>user\nHi<|im_end|>",
                           "  tabs\tand   spaces 3.14159", "caf\xc3\xa9 \xf0\x9f\x98\x80"}) {
    INFO(text);
    CHECK(g.tokenizer->encode(text, false, true) == h.tokenizer->encode(text, false, true));
  }
  const auto digits = h.tokenizer->encode("2024", false, false);
  CHECK(digits.size() == 4);
  WARN("compared " << compared << " weights, max |gguf - hf| = " << max_abs);
}
