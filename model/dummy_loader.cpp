// load_model for "dummy:<config.json>[?dtype=...&seed=...&group=...]": random weights for
// benchmarks. dtype: a storage type (f32, f16, bf16, q8_0, q4_0, q4_1) or a quantization
// scheme of kernels/weight_scheme.h (fp8: e4m3 per channel; int8: symmetric; int4: symmetric,
// zero point 8), group-wise with `group` values per group (default 128). With a scheme the
// projections are quantized and the embedding, LM head and norms stay bf16 / f32, as in
// FP8 / GPTQ / AWQ checkpoints. Every scale is the same value (4 sigma at full scale).
//
// Weights are N(0, 0.02) like Hugging Face's initializer; RMSNorm gammas are 1 + N(0, 0.02)
// (HF initializes them to ones; the noise keeps a backend that ignores gamma detectable).
// To keep host memory at about one tensor even for 70B shapes, every matrix is a view into
// one shared random pool, each starting at its own name-dependent offset:
//
//   pool: [ max tensor elements + kWindow ]     tensor view: pool[offset, offset + rows*cols)
//
// Backends copy what they upload, so sharing the pool is invisible to them. The values depend
// only on the seed (chunks are seeded by index), never on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "kernels/dequant.h"
#include "kernels/fp8.h"
#include "model/loader.h"

namespace tessera {
namespace {

constexpr uint64_t kDefaultSeed = 0x7e55e7a2024ull;
constexpr int64_t kChunk = 1 << 16;   // elements generated per task (a block multiple)
constexpr int64_t kWindow = 1 << 20;  // spread of view start offsets, in elements
constexpr int64_t kViewAlign = 256;   // view offsets stay block- and cache-line-aligned
constexpr float kStd = 0.02f;

struct DummySpec {
  std::string config_path;
  DType dtype = DType::kF32;
  QuantKind quant = QuantKind::kDense;  // a scheme: projections quantized, the rest bf16
  int group_size = 128;
  uint64_t seed = kDefaultSeed;
};

DType parse_dtype(const std::string& s) {
  for (DType t :
       {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    if (s == dtype_name(t)) return t;
  }
  throw Error(ErrorKind::kInvalidArgument,
              "dummy model: unknown dtype '" + s + "' (f32, f16, bf16, q8_0, q4_0, q4_1)");
}

DummySpec parse_spec(const std::string& spec) {
  DummySpec out;
  const size_t q = spec.find('?');
  out.config_path = spec.substr(0, q);
  if (q == std::string::npos) return out;
  std::string rest = spec.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string item = rest.substr(0, amp);
    rest = amp == std::string::npos ? "" : rest.substr(amp + 1);
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "dtype" && (value == "fp8" || value == "int8" || value == "int4")) {
      out.quant = value == "fp8"    ? QuantKind::kFp8
                  : value == "int8" ? QuantKind::kInt8
                                    : QuantKind::kInt4;
      out.dtype = DType::kBF16;
    } else if (key == "dtype") {
      out.dtype = parse_dtype(value);
    } else if (key == "group") {
      out.group_size = std::atoi(value.c_str());
      if (out.group_size <= 0 || out.group_size % 32 != 0) {
        throw Error(ErrorKind::kInvalidArgument,
                    "dummy model: group must be a positive multiple of 32, not '" + value + "'");
      }
    } else if (key == "seed") {
      try {
        size_t used = 0;
        out.seed = std::stoull(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
      } catch (const std::exception&) {
        throw Error(ErrorKind::kInvalidArgument, "dummy model: bad seed '" + value + "'");
      }
    } else {
      throw Error(ErrorKind::kInvalidArgument,
                  "dummy model: unknown option '" + key + "' (dtype, seed, group)");
    }
  }
  return out;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// n normal values (mean, std) from a stream seeded by (seed, stream); Box-Muller.
void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, float mean, float std) {
  uint64_t state = seed ^ (stream * 0xd1b54a32d192ed03ull);
  constexpr double kTwoPi = 6.283185307179586;
  for (int64_t i = 0; i < n; i += 2) {
    // 53-bit uniforms in (0, 1]: log never sees 0.
    const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1p-53;
    const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double z[2] = {r * std::cos(kTwoPi * u2), r * std::sin(kTwoPi * u2)};
    for (int k = 0; k < 2 && i + k < n; ++k) {
      float v = static_cast<float>(z[k]) * std;
      // Keep every weight away from zero, also after rounding to f16.
      if (std::fabs(v) < 1e-4f) v = std::copysign(1e-4f, v);
      out[i + k] = mean + v;
    }
  }
}

// `elems` random values (a multiple of kChunk) stored in `dtype`, built on all cores.
std::shared_ptr<uint8_t[]> make_pool(DType dtype, int64_t elems, uint64_t seed, float mean) {
  std::shared_ptr<uint8_t[]> pool(new uint8_t[dtype_row_bytes(dtype, elems)]);
  const int64_t num_chunks = elems / kChunk;
  const int num_threads =
      static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, num_chunks));
  std::vector<std::thread> threads;
  for (int t = 0; t < num_threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> values(kChunk);
      for (int64_t c = t; c < num_chunks; c += num_threads) {
        fill_normal(values.data(), kChunk, seed, static_cast<uint64_t>(c), mean, kStd);
        const std::vector<uint8_t> bytes = quantize(dtype, values);
        std::memcpy(pool.get() + dtype_row_bytes(dtype, c * kChunk), bytes.data(), bytes.size());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  return pool;
}

// Scale of every quantized value: 4 sigma of N(0, kStd) at the type's largest code.
float code_scale(QuantKind k) {
  return 4.0f * kStd / (k == QuantKind::kFp8 ? kFp8E4m3Max : k == QuantKind::kInt8 ? 127.0f : 7.0f);
}

// `elems` random N(0, kStd) values as codes of scheme `k` with one scale (code_scale):
// e4m3 or int8 bytes, or int4 nibbles (low first, zero point 8). Built on all cores.
std::shared_ptr<uint8_t[]> make_code_pool(QuantKind k, int64_t elems, uint64_t seed) {
  const size_t bytes = k == QuantKind::kInt4 ? size_t(elems) / 2 : size_t(elems);
  std::shared_ptr<uint8_t[]> pool(new uint8_t[bytes]);
  const int64_t num_chunks = elems / kChunk;
  const int num_threads =
      static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, num_chunks));
  const float inv = 1.0f / code_scale(k);
  std::vector<std::thread> threads;
  for (int t = 0; t < num_threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> values(kChunk);
      for (int64_t c = t; c < num_chunks; c += num_threads) {
        fill_normal(values.data(), kChunk, seed, static_cast<uint64_t>(c), 0.0f, kStd);
        for (int64_t i = 0; i < kChunk; ++i) {
          const float v = values[i] * inv;
          const int64_t e = c * kChunk + i;
          if (k == QuantKind::kFp8) {
            pool[e] = f32_to_fp8_e4m3(v);
          } else if (k == QuantKind::kInt8) {
            pool[e] = static_cast<uint8_t>(
                static_cast<int8_t>(std::clamp(std::nearbyint(v), -127.0f, 127.0f)));
          } else {
            const auto q = static_cast<uint8_t>(std::clamp(std::nearbyint(v), -8.0f, 7.0f) + 8);
            uint8_t& b = pool[e / 2];
            b = (e & 1) ? static_cast<uint8_t>((b & 0x0f) | (q << 4)) : q;
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  return pool;
}

uint64_t name_hash(const std::string& name, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

ModelConfig read_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorKind::kNotFound, "dummy model: cannot open config '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": invalid JSON: " + e.what());
  }
  ModelConfig c;
  try {
    c = ModelConfig::from_hf_json(j);
    c.validate();
  } catch (const Error& e) {
    throw Error(e.kind(), path + ": " + e.what());
  }
  if (!j.contains("_name_or_path") && !j.contains("name")) {
    c.name = std::filesystem::path(path).stem().string();
  }
  return c;
}

}  // namespace

LoadedModel load_dummy_model(const std::string& spec_str) {
  const DummySpec spec = parse_spec(spec_str);
  LoadedModel model;
  model.source = "dummy:" + spec_str;
  model.config = read_config(spec.config_path);
  const std::vector<WeightSpec> specs = expected_weights(model.config);

  const bool quantized = spec.quant != QuantKind::kDense;
  // With a scheme, only the embedding and the LM head stay dense (bf16).
  auto dense = [&](const WeightSpec& w) {
    return !quantized || w.name == "token_embd.weight" || w.name == "output.weight";
  };
  int64_t max_elems = 0, max_quant_elems = 0, max_scales = 0;
  int64_t norm_elems = 0;
  for (const WeightSpec& w : specs) {
    if (w.is_norm) {
      norm_elems += w.cols;
    } else if (dense(w)) {
      max_elems = std::max(max_elems, w.rows * w.cols);
    } else {
      max_quant_elems = std::max(max_quant_elems, w.rows * w.cols);
      max_scales =
          std::max(max_scales, w.rows * ((w.cols + spec.group_size - 1) / spec.group_size));
      if (w.cols % 32 != 0) {
        throw Error(ErrorKind::kInvalidArgument, "dummy model: tensor '" + w.name + "' has " +
                                                     std::to_string(w.cols) +
                                                     " columns, not a multiple of 32");
      }
    }
    if (!w.is_norm && w.cols % dtype_block_elems(spec.dtype) != 0) {
      throw Error(ErrorKind::kInvalidArgument,
                  "dummy model: tensor '" + w.name + "' has " + std::to_string(w.cols) +
                      " columns, not a multiple of the " + dtype_name(spec.dtype) + " block");
    }
  }
  const int64_t pool_elems = (max_elems + kWindow + kChunk - 1) / kChunk * kChunk;
  auto pool = make_pool(spec.dtype, pool_elems, spec.seed, 0.0f);
  std::shared_ptr<uint8_t[]> codes;
  std::shared_ptr<float[]> scales;
  if (quantized) {
    const int64_t code_elems = (max_quant_elems + kWindow + kChunk - 1) / kChunk * kChunk;
    codes = make_code_pool(spec.quant, code_elems, spec.seed + 2);
    scales = std::shared_ptr<float[]>(new float[std::max<int64_t>(max_scales, 1)]);
    std::fill_n(scales.get(), std::max<int64_t>(max_scales, 1), code_scale(spec.quant));
    model.weights.storage.push_back(std::shared_ptr<void>(codes, codes.get()));
    model.weights.storage.push_back(std::shared_ptr<void>(scales, scales.get()));
  }
  // Norm gammas stay in a float type (GGUF keeps them f32 even in quantized files).
  const DType norm_dtype = dtype_is_quantized(spec.dtype) ? DType::kF32 : spec.dtype;
  const int64_t norm_pool_elems = (norm_elems + kChunk - 1) / kChunk * kChunk;
  auto norms = make_pool(norm_dtype, norm_pool_elems, spec.seed + 1, 1.0f);

  int64_t norm_offset = 0;
  for (const WeightSpec& w : specs) {
    HostTensor t;
    t.rows = w.rows;
    t.cols = w.cols;
    const int64_t offset =
        static_cast<int64_t>(name_hash(w.name, spec.seed) % (kWindow / kViewAlign)) * kViewAlign;
    if (w.is_norm) {
      t.dtype = norm_dtype;
      t.data = norms.get() + dtype_row_bytes(norm_dtype, norm_offset);
      norm_offset += w.cols;
    } else if (dense(w)) {
      t.dtype = spec.dtype;
      t.data = pool.get() + dtype_row_bytes(spec.dtype, offset);
    } else {
      t.dtype = DType::kBF16;  // unused by the scheme
      t.scheme.kind = spec.quant;
      t.scheme.per_channel = spec.quant == QuantKind::kFp8;
      t.scheme.group_size = spec.quant == QuantKind::kFp8 ? 0 : spec.group_size;
      t.data = codes.get() + (spec.quant == QuantKind::kInt4 ? offset / 2 : offset);
      t.scales = scales.get();
    }
    model.weights.tensors.emplace(w.name, t);
  }
  model.weights.storage.push_back(std::shared_ptr<void>(pool, pool.get()));
  model.weights.storage.push_back(std::shared_ptr<void>(norms, norms.get()));
  return model;  // no tokenizer: dummy models run on token ids
}

}  // namespace tessera
