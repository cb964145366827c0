// load_model on every source kind: the default GGUF, tiny GGUF and HF folders written here
// (single file and sharded), dummy configs; and the errors for damaged or unsupported input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "kernels/dequant.h"
#include "model/gguf_writer.h"
#include "model/loader.h"
#include "model/safetensors_file.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace fs = std::filesystem;
using tessera::DType;
using tessera::ErrorKind;

namespace {

const std::string kRoot = TESSERA_SOURCE_DIR;
const std::string kModel = kRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

// Tiny shape: vocab 64, hidden 32, ffn 64, 2 layers, 4 heads of 8, 2 KV heads.
const nlohmann::json kTinyConfig = {{"model_type", "llama"},    {"vocab_size", 64},
                                    {"hidden_size", 32},        {"intermediate_size", 64},
                                    {"num_hidden_layers", 2},   {"num_attention_heads", 4},
                                    {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-6},
                                    {"rope_theta", 10000.0},    {"tie_word_embeddings", false}};

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("tessera_loader_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 7919) % 113 + 1);
  return v;
}

struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> safetensors_bytes(const std::vector<StTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::vector<uint8_t> out(8 + h.size() + offset);
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, h.data(), h.size());
  size_t at = 8 + h.size();
  for (const auto& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(out.data() + at, t.bytes.data(), t.bytes.size());
    at += t.bytes.size();
  }
  return out;
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// HF tensors of the tiny model in `dtype` ("F32", "F16", "BF16").
std::vector<StTensor> tiny_hf_tensors(const std::string& dtype) {
  const DType t = dtype == "F32" ? DType::kF32 : dtype == "F16" ? DType::kF16 : DType::kBF16;
  std::vector<StTensor> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    out.push_back({name, dtype, shape, tessera::quantize(t, ramp(n, 1.0f / 128))});
  };
  add("model.embed_tokens.weight", {64, 32});
  add("model.norm.weight", {32});
  add("lm_head.weight", {64, 32});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {32});
    add(p + "self_attn.q_proj.weight", {32, 32});
    add(p + "self_attn.k_proj.weight", {16, 32});
    add(p + "self_attn.v_proj.weight", {16, 32});
    add(p + "self_attn.o_proj.weight", {32, 32});
    add(p + "post_attention_layernorm.weight", {32});
    add(p + "mlp.gate_proj.weight", {64, 32});
    add(p + "mlp.up_proj.weight", {64, 32});
    add(p + "mlp.down_proj.weight", {32, 64});
  }
  return out;
}

fs::path write_tiny_hf(const std::string& name, const std::string& dtype) {
  fs::path dir = temp_dir(name);
  std::ofstream(dir / "config.json") << kTinyConfig.dump();
  write_file(dir / "model.safetensors", safetensors_bytes(tiny_hf_tensors(dtype)));
  return dir;
}

// The tiny model as GGUF, weights in `dtype` (norms f32); unread_down: one q2_K tensor (a type
// Tessera does not read).
tessera::GgufWriter tiny_gguf(uint32_t ggml_type, DType dtype, bool unread_down = false) {
  tessera::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_u32("llama.embedding_length", 32);
  w.set_u32("llama.feed_forward_length", 64);
  w.set_u32("llama.attention.head_count", 4);
  w.set_u32("llama.attention.head_count_kv", 2);
  w.set_u32("llama.vocab_size", 64);
  auto add = [&](const std::string& name, int64_t rows, int64_t cols) {
    const bool norm = rows == 1;
    w.add_tensor(name, norm ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows},
                 norm ? 0 : ggml_type,
                 tessera::quantize(norm ? DType::kF32 : dtype, ramp(rows * cols, 0.01f)));
  };
  add("token_embd.weight", 64, 32);
  add("output_norm.weight", 1, 32);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", 1, 32);
    add(p + "attn_q.weight", 32, 32);
    add(p + "attn_k.weight", 16, 32);
    add(p + "attn_v.weight", 16, 32);
    add(p + "attn_output.weight", 32, 32);
    add(p + "ffn_norm.weight", 1, 32);
    add(p + "ffn_gate.weight", 64, 32);
    add(p + "ffn_up.weight", 64, 32);
    if (l == 1 && unread_down) {
      w.add_tensor(p + "ffn_down.weight", {256, 8}, 10, std::vector<uint8_t>(84 * 8, 0));
    } else {
      add(p + "ffn_down.weight", 32, 64);
    }
  }
  return w;
}

tessera::Error load_error(const std::string& path) {
  try {
    tessera::load_model(path);
  } catch (const tessera::Error& e) {
    return e;
  }
  FAIL("load_model succeeded on " << path);
  return tessera::Error(ErrorKind::kInternal, "");
}

bool contains(const tessera::Error& e, const std::string& s) {
  return std::string(e.what()).find(s) != std::string::npos;
}

}  // namespace

TEST_CASE("loader: default GGUF", "[loader]") {
  if (!fs::exists(kModel)) {
    WARN("skipping: " << kModel << " is missing");
    return;
  }
  const tessera::LoadedModel m = tessera::load_model(kModel);
  CHECK(m.source == kModel);
  CHECK(m.config.num_layers == 30);
  CHECK(m.config.tied_embeddings);
  CHECK(m.weights.tensors.size() == 2 + 9 * 30);
  const auto& emb = m.weights.get("token_embd.weight");
  CHECK(emb.dtype == DType::kQ8_0);
  CHECK(emb.rows == 49152);
  CHECK(emb.cols == 576);
  const auto& k = m.weights.get("blk.3.attn_k.weight");
  CHECK(k.dtype == DType::kQ4_1);
  CHECK(k.rows == 192);
  CHECK(k.cols == 576);
  const auto& down = m.weights.get("blk.3.ffn_down.weight");
  CHECK(down.rows == 576);
  CHECK(down.cols == 1536);
  const auto& norm = m.weights.get("output_norm.weight");
  CHECK(norm.dtype == DType::kF32);
  CHECK(norm.rows == 1);
  CHECK(norm.cols == 576);
  CHECK_FALSE(m.weights.has("output.weight"));
  CHECK_FALSE(m.weights.storage.empty());
  CHECK_THROWS_WITH(m.weights.get("nope"), Catch::Contains("nope"));
  REQUIRE(m.tokenizer != nullptr);
  CHECK(m.tokenizer->vocab_size() == 49152);
  CHECK(m.tokenizer->token_id("<|im_end|>") == 2);
}

TEST_CASE("loader: tiny GGUF in every supported type", "[loader]") {
  const fs::path dir = temp_dir("gguf");
  const std::pair<uint32_t, DType> types[] = {{0, DType::kF32},   {1, DType::kF16},
                                              {30, DType::kBF16}, {8, DType::kQ8_0},
                                              {2, DType::kQ4_0},  {3, DType::kQ4_1}};
  for (const auto& [ggml, dtype] : types) {
    const std::string path = (dir / "tiny.gguf").string();
    tiny_gguf(ggml, dtype).write(path);
    // Found by its magic whatever the file is called.
    const std::string renamed = (dir / "tiny.bin").string();
    fs::copy_file(path, renamed, fs::copy_options::overwrite_existing);
    const tessera::LoadedModel m = tessera::load_model(renamed);
    INFO(tessera::dtype_name(dtype));
    CHECK(m.config.vocab_size == 64);
    CHECK(m.config.head_dim == 8);
    CHECK(m.config.tied_embeddings);
    CHECK(m.tokenizer == nullptr);  // no tokenizer.ggml.* metadata
    const auto& q = m.weights.get("blk.1.attn_q.weight");
    CHECK(q.dtype == dtype);
    CHECK(q.rows == 32);
    CHECK(q.cols == 32);
    // Values survive the trip (within the type's rounding).
    const auto values = tessera::dequantize_tensor(m.weights.get("blk.0.ffn_up.weight"));
    const auto expect = ramp(64 * 32, 0.01f);
    for (size_t i = 0; i < values.size(); ++i) REQUIRE(values[i] == Approx(expect[i]).margin(0.08));
  }
  fs::remove_all(dir);
}

TEST_CASE("loader: GGUF errors name the file and tensor", "[loader]") {
  const fs::path dir = temp_dir("gguf_err");
  const std::string path = (dir / "bad.gguf").string();
  tiny_gguf(0, DType::kF32, true).write(path);  // blk.1.ffn_down.weight is q2_K
  auto e = load_error(path);
  CHECK(e.kind() == ErrorKind::kUnsupported);
  CHECK(contains(e, "blk.1.ffn_down.weight"));
  CHECK(contains(e, "q2_K"));
  CHECK(contains(e, path));

  auto bytes = tiny_gguf(0, DType::kF32).build();
  bytes.resize(bytes.size() / 2);
  write_file(path, bytes);
  e = load_error(path);
  CHECK(e.kind() == ErrorKind::kCorruptFile);
  CHECK(contains(e, path));

  tessera::GgufWriter w = tiny_gguf(0, DType::kF32);
  w.add_tensor("output.weight", {32, 63}, 0, std::vector<uint8_t>(32 * 63 * 4, 1));
  w.write(path);
  e = load_error(path);
  CHECK(contains(e, "output.weight"));
  CHECK(contains(e, "[63, 32]"));

  CHECK(load_error((dir / "missing.gguf").string()).kind() == ErrorKind::kNotFound);
  std::ofstream(dir / "notes.txt") << "hello";
  CHECK(load_error((dir / "notes.txt").string()).kind() == ErrorKind::kInvalidArgument);
  fs::remove_all(dir);
}

TEST_CASE("loader: HF folder, single file and sharded", "[loader]") {
  for (const std::string dtype : {"F32", "F16", "BF16"}) {
    const fs::path dir = write_tiny_hf("hf_" + dtype, dtype);
    const tessera::LoadedModel m = tessera::load_model(dir.string());
    INFO(dtype);
    CHECK(m.config.rope.neox);
    CHECK_FALSE(m.config.tied_embeddings);
    CHECK(m.weights.tensors.size() == 3 + 9 * 2);
    const auto& k = m.weights.get("blk.1.attn_k.weight");
    CHECK(k.rows == 16);
    CHECK(k.cols == 32);
    CHECK(k.dtype == (dtype == "F32" ? DType::kF32 : dtype == "F16" ? DType::kF16 : DType::kBF16));
    const auto values = tessera::dequantize_tensor(m.weights.get("output.weight"));
    const auto expect = ramp(64 * 32, 1.0f / 128);
    for (size_t i = 0; i < values.size(); ++i)
      REQUIRE(values[i] == Approx(expect[i]).epsilon(4e-3));
    fs::remove_all(dir);
  }

  // Sharded: two files and an index; tied config drops the stored lm_head.
  const fs::path dir = temp_dir("hf_sharded");
  auto tensors = tiny_hf_tensors("BF16");
  std::vector<StTensor> a(tensors.begin(), tensors.begin() + 10);
  std::vector<StTensor> b(tensors.begin() + 10, tensors.end());
  write_file(dir / "model-00001-of-00002.safetensors", safetensors_bytes(a));
  write_file(dir / "model-00002-of-00002.safetensors", safetensors_bytes(b));
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  for (const auto& t : a) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  nlohmann::json config = kTinyConfig;
  config["tie_word_embeddings"] = true;
  std::ofstream(dir / "config.json") << config.dump();
  const tessera::LoadedModel m = tessera::load_model(dir.string());
  CHECK(m.config.tied_embeddings);
  CHECK(m.weights.tensors.size() == 2 + 9 * 2);
  CHECK_FALSE(m.weights.has("output.weight"));
  CHECK(m.weights.get("blk.1.ffn_down.weight").cols == 64);
  fs::remove_all(dir);
}

TEST_CASE("loader: HF folder errors", "[loader]") {
  SECTION("unsupported dtype names the tensor") {
    const fs::path dir = write_tiny_hf("hf_i64", "F32");
    auto tensors = tiny_hf_tensors("F32");
    tensors[4] = {"model.layers.0.self_attn.q_proj.weight",
                  "I32",
                  {32, 32},
                  std::vector<uint8_t>(32 * 32 * 4, 0)};
    write_file(dir / "model.safetensors", safetensors_bytes(tensors));
    auto e = load_error(dir.string());
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(contains(e, "q_proj"));
    CHECK(contains(e, "I32"));
  }
  SECTION("truncated shard") {
    const fs::path dir = write_tiny_hf("hf_trunc", "F32");
    fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
    auto e = load_error(dir.string());
    CHECK(e.kind() == ErrorKind::kCorruptFile);
    CHECK(contains(e, "model.safetensors"));
    CHECK(contains(e, "truncated"));
  }
  SECTION("absurd header length") {
    const fs::path dir = write_tiny_hf("hf_header", "F32");
    write_file(dir / "model.safetensors", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{'});
    CHECK(contains(load_error(dir.string()), "header length"));
  }
  SECTION("shape and byte count disagree") {
    const fs::path dir = write_tiny_hf("hf_shape", "F32");
    auto tensors = tiny_hf_tensors("F32");
    tensors[0].shape = {64, 31};
    write_file(dir / "model.safetensors", safetensors_bytes(tensors));
    CHECK(contains(load_error(dir.string()), "shape needs"));
  }
  SECTION("missing tensor") {
    const fs::path dir = write_tiny_hf("hf_missing", "F32");
    auto tensors = tiny_hf_tensors("F32");
    tensors.pop_back();
    write_file(dir / "model.safetensors", safetensors_bytes(tensors));
    CHECK(contains(load_error(dir.string()), "blk.1.ffn_down.weight"));
  }
  SECTION("unexpected tensor") {
    const fs::path dir = write_tiny_hf("hf_bias", "F32");
    auto tensors = tiny_hf_tensors("F32");
    tensors.push_back(
        {"model.layers.0.self_attn.q_proj.bias", "F32", {32}, std::vector<uint8_t>(128, 0)});
    write_file(dir / "model.safetensors", safetensors_bytes(tensors));
    CHECK(contains(load_error(dir.string()), "q_proj.bias"));
  }
  SECTION("no config") {
    const fs::path dir = write_tiny_hf("hf_noconfig", "F32");
    fs::remove(dir / "config.json");
    CHECK(load_error(dir.string()).kind() == ErrorKind::kNotFound);
  }
  SECTION("bad config names the file") {
    const fs::path dir = write_tiny_hf("hf_badconfig", "F32");
    std::ofstream(dir / "config.json") << R"({"vocab_size": 64})";
    auto e = load_error(dir.string());
    CHECK(contains(e, "config.json"));
    CHECK(contains(e, "hidden_size"));
  }
}

TEST_CASE("loader: dummy models", "[loader]") {
  const std::string config = kRoot + "/configs/models/smollm2-135m.json";
  const tessera::LoadedModel a = tessera::load_model("dummy:" + config);
  CHECK(a.tokenizer == nullptr);
  CHECK(a.config.num_layers == 30);
  CHECK(a.config.name == "HuggingFaceTB/SmolLM2-135M-Instruct");
  CHECK(a.weights.tensors.size() == 2 + 9 * 30);
  const auto& emb = a.weights.get("token_embd.weight");
  CHECK(emb.dtype == DType::kF32);
  CHECK(emb.rows == 49152);

  // N(0, 0.02) without zeros, norms near 1.
  const auto* v = static_cast<const float*>(emb.data);
  double sum = 0, sq = 0;
  const int64_t n = emb.rows * emb.cols;
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += v[i];
    sq += double(v[i]) * v[i];
    zeros += v[i] == 0.0f;
  }
  CHECK(zeros == 0);
  CHECK(std::fabs(sum / n) < 1e-4);
  CHECK(std::sqrt(sq / n) == Approx(0.02).epsilon(0.01));
  const auto* g = static_cast<const float*>(a.weights.get("blk.4.ffn_norm.weight").data);
  for (int i = 0; i < 576; ++i) REQUIRE(std::fabs(g[i] - 1.0f) < 0.15f);
  CHECK(a.weights.get("blk.4.ffn_norm.weight").data != a.weights.get("blk.5.ffn_norm.weight").data);
  CHECK(a.weights.get("blk.0.attn_q.weight").data != a.weights.get("blk.1.attn_q.weight").data);

  // Same seed -> same bytes; another seed -> other values (tiny shape to keep this quick).
  const fs::path dir = temp_dir("dummy");
  std::ofstream(dir / "tiny.json") << kTinyConfig.dump();
  const std::string tiny = (dir / "tiny.json").string();
  const tessera::LoadedModel b1 = tessera::load_model("dummy:" + tiny);
  const tessera::LoadedModel b2 = tessera::load_model("dummy:" + tiny);
  CHECK(b1.config.name == "tiny");
  const auto& q1 = b1.weights.get("blk.1.attn_q.weight");
  const auto& q2 = b2.weights.get("blk.1.attn_q.weight");
  CHECK(q1.data != q2.data);
  CHECK(std::memcmp(q1.data, q2.data, 32 * 32 * 4) == 0);
  const tessera::LoadedModel c = tessera::load_model("dummy:" + tiny + "?seed=5");
  CHECK(std::memcmp(q1.data, c.weights.get("blk.1.attn_q.weight").data, 32 * 4) != 0);

  for (DType t : {DType::kBF16, DType::kF16, DType::kQ4_0, DType::kQ8_0, DType::kQ4_1}) {
    const auto m = tessera::load_model("dummy:" + tiny + "?seed=3&dtype=" + tessera::dtype_name(t));
    INFO(tessera::dtype_name(t));
    CHECK(m.weights.get("blk.1.ffn_up.weight").dtype == t);
    CHECK(m.weights.get("blk.1.ffn_norm.weight").dtype ==
          (tessera::dtype_is_quantized(t) ? DType::kF32 : t));
    const auto values = tessera::dequantize_tensor(m.weights.get("token_embd.weight"));
    double s = 0;
    for (float x : values) s += double(x) * x;
    CHECK(std::sqrt(s / values.size()) == Approx(0.02).epsilon(0.1));
  }
  fs::remove_all(dir);
}

TEST_CASE("loader: dummy spec errors", "[loader]") {
  const std::string config = kRoot + "/configs/models/smollm2-135m.json";
  CHECK(load_error("dummy:" + config + "?dtype=q5_k").kind() == ErrorKind::kInvalidArgument);
  CHECK(contains(load_error("dummy:" + config + "?dtype=q5_k"), "q5_k"));
  CHECK(contains(load_error("dummy:" + config + "?colour=red"), "colour"));
  CHECK(contains(load_error("dummy:" + config + "?seed=abc"), "seed"));
  CHECK(load_error("dummy:/no/such/config.json").kind() == ErrorKind::kNotFound);
}

TEST_CASE("loader: canonical names of HF tensors", "[loader]") {
  CHECK(tessera::canonical_weight_name("model.layers.12.mlp.down_proj.weight") ==
        "blk.12.ffn_down.weight");
  CHECK(tessera::canonical_weight_name("model.layers.0.post_attention_layernorm.weight") ==
        "blk.0.ffn_norm.weight");
  CHECK(tessera::canonical_weight_name("lm_head.weight") == "output.weight");
  CHECK(tessera::canonical_weight_name("model.layers.0.self_attn.q_proj.bias").empty());
  CHECK(tessera::canonical_weight_name("model.layers.x.mlp.up_proj.weight").empty());
}
