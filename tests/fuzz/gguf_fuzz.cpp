// Seeded mutation fuzzer for the GGUF reader (and the config reader on top of it). Build it
// under ASan + UBSan (-DTESSERA_SANITIZE=ON) and run:
//
//   gguf_fuzz [--iterations N] [--seed S] [--replay I --out file] [[--model] path.gguf]
//
// Seeds: small valid GGUFs built here (every value type, nested arrays, v2 and v3, several
// alignments, every supported tensor type) and the first 1 MB of the default model. Each
// iteration mutates one seed (bit flips, interesting integers over length/count fields,
// truncation, inserted or deleted bytes, splices from another seed) and parses it. Parsing
// must either succeed, after which every tensor byte and metadata value is touched, or throw
// tessera::Error; any other exception, and any sanitizer report, is a failure. Iteration I
// depends only on (seed, I), so --replay I writes exactly the input that failed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/dequant.h"
#include "model/gguf_config.h"
#include "model/gguf_file.h"
#include "model/gguf_writer.h"

// GCC 12 with -fsanitize=address reports a false "maybe uninitialized" std::string inside
// std::variant when pushing GgufValues; the values are fully constructed.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using tessera::GgufArray;
using tessera::GgufType;
using tessera::GgufValue;
using tessera::GgufWriter;
using Bytes = std::vector<uint8_t>;

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

Bytes f32_bytes(size_t n, float scale) {
  Bytes out(n * 4);
  for (size_t i = 0; i < n; ++i) {
    const float v = scale * static_cast<float>(i % 17) - 0.1f;
    std::memcpy(&out[i * 4], &v, 4);
  }
  return out;
}

Bytes quantized(tessera::DType t, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>(static_cast<int>(i % 23) - 11);
  return tessera::quantize(t, v);
}

// A complete tiny llama model: passes model_config_from_gguf when unmutated.
GgufWriter tiny_llama() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "fuzz");
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.embedding_length", 32);
  w.set_u32("llama.feed_forward_length", 64);
  w.set_u32("llama.attention.head_count", 4);
  w.set_u32("llama.attention.head_count_kv", 2);
  w.set_u32("llama.context_length", 128);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string("tokenizer.ggml.model", "gpt2");
  std::vector<std::string> tokens;
  for (int i = 0; i < 48; ++i) tokens.push_back("tok" + std::to_string(i));
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  GgufArray types;
  types.elem_type = static_cast<uint32_t>(GgufType::kInt32);
  for (int i = 0; i < 48; ++i) types.values.push_back(int64_t{i % 4});
  w.set_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {"t o", "to k"});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_tensor("token_embd.weight", {32, 48}, 8, quantized(tessera::DType::kQ8_0, 32 * 48));
  w.add_tensor("output_norm.weight", {32}, 0, f32_bytes(32, 0.1f));
  w.add_tensor("blk.0.attn_norm.weight", {32}, 0, f32_bytes(32, 0.1f));
  w.add_tensor("blk.0.attn_q.weight", {32, 32}, 3, quantized(tessera::DType::kQ4_1, 32 * 32));
  w.add_tensor("blk.0.attn_k.weight", {32, 16}, 2, quantized(tessera::DType::kQ4_0, 32 * 16));
  w.add_tensor("blk.0.attn_v.weight", {32, 16}, 1, quantized(tessera::DType::kF16, 32 * 16));
  w.add_tensor("blk.0.attn_output.weight", {32, 32}, 30, quantized(tessera::DType::kBF16, 32 * 32));
  w.add_tensor("blk.0.ffn_norm.weight", {32}, 0, f32_bytes(32, 0.1f));
  w.add_tensor("blk.0.ffn_gate.weight", {32, 64}, 0, f32_bytes(32 * 64, 0.01f));
  w.add_tensor("blk.0.ffn_up.weight", {32, 64}, 8, quantized(tessera::DType::kQ8_0, 32 * 64));
  w.add_tensor("blk.0.ffn_down.weight", {64, 32}, 3, quantized(tessera::DType::kQ4_1, 64 * 32));
  w.add_tensor("rope_freqs.weight", {4}, 0, f32_bytes(4, 1.0f));
  return w;
}

// Every value type, nested arrays, a q6_K tensor (a K-quant), a 3-D tensor.
GgufWriter all_types() {
  GgufWriter w;
  w.set("u8", GgufType::kUint8, uint64_t{7});
  w.set("i8", GgufType::kInt8, int64_t{-7});
  w.set("u16", GgufType::kUint16, uint64_t{700});
  w.set("i16", GgufType::kInt16, int64_t{-700});
  w.set("u32", GgufType::kUint32, uint64_t{70000});
  w.set("i32", GgufType::kInt32, int64_t{-70000});
  w.set("u64", GgufType::kUint64, uint64_t{1} << 40);
  w.set("i64", GgufType::kInt64, -(int64_t{1} << 40));
  w.set("f32", GgufType::kFloat32, 0.5);
  w.set("f64", GgufType::kFloat64, -0.25);
  w.set("bool", GgufType::kBool, true);
  w.set("str", GgufType::kString, std::string("value"));
  GgufArray inner;
  inner.elem_type = static_cast<uint32_t>(GgufType::kFloat32);
  inner.values = {1.0, 2.0, 3.0};
  GgufArray outer;
  outer.elem_type = static_cast<uint32_t>(GgufType::kArray);
  outer.values = {std::make_shared<GgufArray>(inner), std::make_shared<GgufArray>(inner)};
  w.set_array("nested", outer);
  GgufArray strings;
  strings.elem_type = static_cast<uint32_t>(GgufType::kString);
  strings.values = {std::string("a"), std::string(""), std::string("ccc")};
  w.set_array("strings", strings);
  w.add_tensor("k6.weight", {256, 2}, 14, Bytes(420, 3));
  w.add_tensor("cube", {2, 2, 2}, 0, f32_bytes(8, 1.0f));
  w.add_tensor("empty", {0}, 0, {});
  return w;
}

std::vector<Bytes> make_seeds(const std::string& model_path) {
  std::vector<Bytes> seeds;
  seeds.push_back(tiny_llama().build(3, 32));
  seeds.push_back(tiny_llama().build(2, 32));
  seeds.push_back(tiny_llama().build(3, 64));
  seeds.push_back(tiny_llama().build(3, 8));
  seeds.push_back(all_types().build(3, 32));
  seeds.push_back(all_types().build(2, 16));
  seeds.push_back(GgufWriter().build(3, 32));  // header only
  std::ifstream f(model_path, std::ios::binary);
  if (f) {
    Bytes prefix(1 << 20);
    f.read(reinterpret_cast<char*>(prefix.data()), static_cast<std::streamsize>(prefix.size()));
    prefix.resize(static_cast<size_t>(f.gcount()));
    seeds.push_back(std::move(prefix));
  } else {
    std::fprintf(stderr, "note: %s not found; fuzzing synthetic seeds only\n", model_path.c_str());
  }
  return seeds;
}

constexpr uint64_t kInteresting[] = {
    0,          1,          2,          3,          4,          7,          8,
    12,         13,         31,         32,         63,         64,         255,
    256,        0x7fff,     0xffff,     0x7fffffff, 0x80000000, 0xffffffff, 1ull << 32,
    1ull << 40, 1ull << 59, 1ull << 62, 1ull << 63, ~0ull,      ~0ull - 1,  0x7fffffffffffffff};

// Mutation positions favour the first 4 KB, where headers, counts and lengths live.
size_t pick_pos(Rng& rng, size_t size) {
  if (size == 0) return 0;
  return rng.below(2) ? rng.below(std::min<size_t>(size, 4096)) : rng.below(size);
}

void mutate_once(Rng& rng, Bytes& b, const std::vector<Bytes>& seeds) {
  switch (rng.below(7)) {
    case 0: {  // bit flips
      const size_t n = 1 + rng.below(8);
      for (size_t i = 0; i < n && !b.empty(); ++i) b[pick_pos(rng, b.size())] ^= 1u << rng.below(8);
      break;
    }
    case 1:
    case 2: {  // an interesting integer over a 1/2/4/8-byte field (lengths, counts, types)
      const size_t width = size_t{1} << rng.below(4);
      if (b.size() < width) break;
      const size_t pos = std::min(pick_pos(rng, b.size()), b.size() - width);
      uint64_t v = kInteresting[rng.below(std::size(kInteresting))];
      if (rng.below(4) == 0) v += rng.below(3) - 1;
      std::memcpy(&b[pos], &v, width);
      break;
    }
    case 3:  // truncation
      b.resize(rng.below(b.size() + 1));
      break;
    case 4: {  // inserted bytes
      const size_t pos = pick_pos(rng, b.size() + 1);
      const size_t n = 1 + rng.below(16);
      Bytes ins(n);
      for (auto& x : ins) x = static_cast<uint8_t>(rng.next());
      b.insert(b.begin() + static_cast<long>(std::min(pos, b.size())), ins.begin(), ins.end());
      break;
    }
    case 5: {  // deleted bytes
      if (b.empty()) break;
      const size_t pos = pick_pos(rng, b.size());
      const size_t n = std::min(b.size() - pos, 1 + rng.below(16));
      b.erase(b.begin() + static_cast<long>(pos), b.begin() + static_cast<long>(pos + n));
      break;
    }
    case 6: {  // splice: a run of another seed over this one
      const Bytes& other = seeds[rng.below(seeds.size())];
      if (other.empty() || b.empty()) break;
      const size_t from = pick_pos(rng, other.size());
      const size_t n = std::min({other.size() - from, size_t{1} + rng.below(64), b.size()});
      const size_t to = std::min(pick_pos(rng, b.size()), b.size() - n);
      std::memcpy(&b[to], &other[from], n);
      break;
    }
  }
}

Bytes make_input(uint64_t seed, uint64_t iteration, const std::vector<Bytes>& seeds) {
  Rng rng{seed * 0x2545f4914f6cdd1dull + iteration};
  // The 1 MB model prefix is slow to parse under ASan: use it for 1 input in 64.
  const size_t synthetic = seeds.size() > 7 ? 7 : seeds.size();
  const size_t which = (seeds.size() > 7 && rng.below(64) == 0) ? 7 : rng.below(synthetic);
  Bytes b = seeds[which];
  const size_t rounds = 1 + rng.below(4);
  for (size_t i = 0; i < rounds; ++i) mutate_once(rng, b, seeds);
  return b;
}

// Touches everything a successful parse exposes, so a wrong bound shows up under ASan.
uint64_t exercise(const tessera::GgufFile& g) {
  uint64_t sink = 0;
  for (const auto& t : g.tensors()) {
    if (t.nbytes > 0) sink += t.data[0] + t.data[t.nbytes - 1];
    if (t.supported && t.nbytes > 0 && !t.dims.empty()) {
      const int64_t block = tessera::dtype_block_elems(t.dtype);
      if (t.num_elements() >= block) {
        std::vector<float> out(static_cast<size_t>(block));
        tessera::dequantize(t.dtype, t.data, out.data(), block);
        sink += out[0] != 0.0f;
      }
    }
  }
  for (const auto& [key, value] : g.metadata()) {
    auto attempt = [&](auto&& fn) {
      try {
        fn();
      } catch (const tessera::Error&) {
        ++sink;
      }
    };
    attempt([&] { sink += g.get_int(key).value_or(0); });
    attempt([&] { sink += static_cast<uint64_t>(g.get_float(key).value_or(0)); });
    attempt([&] { sink += g.get_bool(key).value_or(false); });
    attempt([&] { sink += g.get_string(key).value_or("").size(); });
    attempt([&] { sink += g.get_string_array(key).size(); });
    attempt([&] { sink += g.get_int_array(key).size(); });
    attempt([&] { sink += g.get_float_array(key).size(); });
  }
  try {
    sink += tessera::model_config_from_gguf(g).num_layers;
  } catch (const tessera::Error&) {
    ++sink;
  }
  return sink;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 100000, seed = 1;
  int64_t replay = -1;
  // Relative to the working directory: run from the repository root (as CI does) or pass --model.
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string out_path = "gguf_fuzz_input.gguf";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0) {  // a bare argument is the model path
      model = flag;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[++i];
    if (flag == "--iterations") {
      iterations = std::stoull(value);
    } else if (flag == "--seed") {
      seed = std::stoull(value);
    } else if (flag == "--model") {
      model = value;
    } else if (flag == "--replay") {
      replay = std::stoll(value);
    } else if (flag == "--out") {
      out_path = value;
    } else {
      std::fprintf(stderr,
                   "unknown flag %s\nusage: gguf_fuzz [--iterations N] [--seed S] "
                   "[--replay I --out FILE] [[--model] MODEL.gguf]\n",
                   flag.c_str());
      return 2;
    }
  }
  const std::vector<Bytes> seeds = make_seeds(model);
  for (size_t i = 0; i < 7; ++i) {  // the synthetic seeds themselves must parse
    try {
      exercise(*tessera::GgufFile::parse(seeds[i], "seed"));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "seed %zu does not parse: %s\n", i, e.what());
      return 1;
    }
  }
  if (replay >= 0) {
    const Bytes b = make_input(seed, static_cast<uint64_t>(replay), seeds);
    std::ofstream(out_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    std::printf("wrote iteration %lld (%zu bytes) to %s\n", static_cast<long long>(replay),
                b.size(), out_path.c_str());
    return 0;
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t parsed = 0, sink = 0;
  std::map<std::string, uint64_t> errors;
  for (uint64_t it = 0; it < iterations; ++it) {
    const Bytes input = make_input(seed, it, seeds);
    try {
      auto g = tessera::GgufFile::parse(input, "fuzz.gguf");
      sink += exercise(*g);
      ++parsed;
    } catch (const tessera::Error& e) {
      ++errors[tessera::error_kind_name(e.kind())];
    } catch (const std::exception& e) {
      std::fprintf(stderr,
                   "iteration %llu: untyped exception: %s\n(replay: --seed %llu --replay %llu)\n",
                   static_cast<unsigned long long>(it), e.what(),
                   static_cast<unsigned long long>(seed), static_cast<unsigned long long>(it));
      return 1;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("gguf_fuzz: %llu iterations in %.1f s (seed %llu, %zu seeds): %llu parsed",
              static_cast<unsigned long long>(iterations), secs,
              static_cast<unsigned long long>(seed), seeds.size(),
              static_cast<unsigned long long>(parsed));
  for (const auto& [kind, n] : errors) {
    std::printf(", %llu %s", static_cast<unsigned long long>(n), kind.c_str());
  }
  std::printf(" (checksum %llu)\n", static_cast<unsigned long long>(sink));
  return 0;
}
