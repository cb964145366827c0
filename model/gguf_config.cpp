#include "model/gguf_config.h"

#include <cmath>
#include <limits>

#include "common/error.h"
#include "kernels/dequant.h"

namespace tessera {
namespace {

[[noreturn]] void fail(const GgufFile& g, ErrorKind kind, const std::string& what) {
  throw Error(kind, g.path() + ": " + what);
}

int required_int(const GgufFile& g, const std::string& key) {
  std::optional<int64_t> v = g.get_int(key);
  if (!v) fail(g, ErrorKind::kCorruptFile, "metadata key '" + key + "' is missing");
  if (*v <= 0 || *v > std::numeric_limits<int>::max()) {
    fail(g, ErrorKind::kCorruptFile,
         "metadata key '" + key + "' = " + std::to_string(*v) + " is out of range");
  }
  return static_cast<int>(*v);
}

int optional_int(const GgufFile& g, const std::string& key, int fallback) {
  if (!g.has(key)) return fallback;
  return required_int(g, key);
}

// Llama-3 scaling factor of one rotary frequency, as Meta's reference defines it.
double llama3_factor(double inv_freq, const RopeConfig& r) {
  constexpr double kPi = 3.14159265358979323846;
  const double wavelen = 2.0 * kPi / inv_freq;
  const double low_wavelen = r.original_max_position / r.low_freq_factor;
  const double high_wavelen = r.original_max_position / r.high_freq_factor;
  if (wavelen < high_wavelen) return 1.0;
  if (wavelen > low_wavelen) return r.scaling_factor;
  const double smooth = (r.original_max_position / wavelen - r.low_freq_factor) /
                        (r.high_freq_factor - r.low_freq_factor);
  return 1.0 / ((1.0 - smooth) / r.scaling_factor + smooth);
}

// llama.cpp's converter stores Llama-3 scaling as a tensor of per-frequency divisors
// (rope_freqs.weight) rather than its parameters. RopeConfig carries the parameters, so
// recover them (the factor is the largest divisor; the other three are Meta's published
// values unless the metadata says otherwise) and insist they reproduce the tensor.
void rope_from_freqs_tensor(const GgufFile& g, const GgufTensorInfo& t, int rotary_dim,
                            RopeConfig& rope) {
  if (t.dtype != DType::kF32 || !t.supported || t.num_elements() != rotary_dim / 2) {
    fail(g, ErrorKind::kUnsupported,
         "tensor 'rope_freqs.weight' must be f32 of " + std::to_string(rotary_dim / 2) + " values");
  }
  std::vector<float> divisors(static_cast<size_t>(rotary_dim / 2));
  dequantize(DType::kF32, t.data, divisors.data(), rotary_dim / 2);
  float max = 0.0f;
  for (float d : divisors) max = std::max(max, d);
  rope.scaling_factor = max;
  rope.low_freq_factor = 1.0f;
  rope.high_freq_factor = 4.0f;
  rope.original_max_position = optional_int(g, "llama.rope.scaling.original_context_length", 8192);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const double inv_freq = std::pow(static_cast<double>(rope.theta), -2.0 * i / rotary_dim);
    const double expect = llama3_factor(inv_freq, rope);
    if (std::fabs(expect - divisors[i]) > 1e-3 * expect) {
      fail(g, ErrorKind::kUnsupported,
           "tensor 'rope_freqs.weight' is not a Llama-3 scaling Tessera can express (value " +
               std::to_string(i) + " is " + std::to_string(divisors[i]) + ", expected " +
               std::to_string(expect) + ")");
    }
  }
}

void parse_rope_scaling(const GgufFile& g, int rotary_dim, RopeConfig& rope) {
  const std::string type = g.get_string("llama.rope.scaling.type").value_or("none");
  if (type == "llama3") {
    rope.scaling_factor = static_cast<float>(g.get_float("llama.rope.scaling.factor").value_or(0));
    rope.original_max_position =
        optional_int(g, "llama.rope.scaling.original_context_length", 8192);
  } else if (type != "none") {
    fail(g, ErrorKind::kUnsupported,
         "RoPE scaling type '" + type + "' (llama.rope.scaling.type) is not supported");
  }
  if (const GgufTensorInfo* t = g.find_tensor("rope_freqs.weight")) {
    rope_from_freqs_tensor(g, *t, rotary_dim, rope);
  }
}

}  // namespace

ModelConfig model_config_from_gguf(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture").value_or("");
  if (arch != "llama") {
    fail(g, ErrorKind::kUnsupported,
         "architecture '" + arch + "' (general.architecture) is not supported (only llama)");
  }
  ModelConfig c;
  c.name = g.get_string("general.name").value_or(g.path());
  c.architecture = arch;
  c.num_layers = required_int(g, "llama.block_count");
  c.hidden_size = required_int(g, "llama.embedding_length");
  c.intermediate_size = required_int(g, "llama.feed_forward_length");
  c.num_heads = required_int(g, "llama.attention.head_count");
  c.num_kv_heads = optional_int(g, "llama.attention.head_count_kv", c.num_heads);
  c.head_dim = optional_int(g, "llama.attention.key_length", c.hidden_size / c.num_heads);
  if (optional_int(g, "llama.attention.value_length", c.head_dim) != c.head_dim) {
    fail(g, ErrorKind::kUnsupported, "value_length differs from key_length");
  }
  c.max_position_embeddings = optional_int(g, "llama.context_length", 2048);
  c.rms_norm_eps =
      static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope.theta = static_cast<float>(g.get_float("llama.rope.freq_base").value_or(10000.0));
  c.rope.neox = false;  // llama.cpp's converter permutes Q/K rows into adjacent pairs
  const int rotary_dim = optional_int(g, "llama.rope.dimension_count", c.head_dim);
  c.rope.rotary_dim = rotary_dim == c.head_dim ? 0 : rotary_dim;
  parse_rope_scaling(g, rotary_dim, c.rope);

  const GgufTensorInfo* embd = g.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    fail(g, ErrorKind::kCorruptFile, "tensor 'token_embd.weight' is missing or not 2-D");
  }
  int vocab = static_cast<int>(g.get_string_array("tokenizer.ggml.tokens").size());
  if (g.has("llama.vocab_size")) vocab = required_int(g, "llama.vocab_size");
  if (vocab == 0) vocab = static_cast<int>(embd->dims[1]);
  c.vocab_size = vocab;
  c.tied_embeddings = g.find_tensor("output.weight") == nullptr;
  auto token_id = [&](const char* key) {
    std::optional<int64_t> v = g.get_int(key);
    return v && *v >= 0 && *v < vocab ? static_cast<int>(*v) : -1;
  };
  c.bos_token_id = token_id("tokenizer.ggml.bos_token_id");
  c.eos_token_id = token_id("tokenizer.ggml.eos_token_id");
  try {
    c.validate();
  } catch (const Error& e) {
    fail(g, ErrorKind::kCorruptFile, e.what());
  }
  return c;
}

}  // namespace tessera
