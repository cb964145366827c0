// GGUF reader on the real default model: header, metadata of several types, tensor table,
// and that tensor data pointers land at the right bytes of the file.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/error.h"
#include "model/gguf_file.h"

namespace {

const std::string kModel =
    std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::vector<uint8_t> read_bytes(const std::string& path, uint64_t offset, size_t n) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  std::vector<uint8_t> out(n);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
  return out;
}

}  // namespace

TEST_CASE("GGUF: default model header and metadata", "[gguf]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  auto g = tessera::GgufFile::open(kModel);
  CHECK(g->version() == 3);
  CHECK(g->alignment() == 32);
  CHECK(g->metadata().size() == 33);
  CHECK(g->tensors().size() == 272);
  CHECK(g->data_offset() == 1785664);
  CHECK(g->file_size() == 98362432);

  CHECK(g->get_string("general.architecture") == "llama");
  CHECK(g->get_int("llama.block_count") == 30);
  CHECK(g->get_int("llama.embedding_length") == 576);
  CHECK(g->get_int("llama.feed_forward_length") == 1536);
  CHECK(g->get_int("llama.attention.head_count") == 9);
  CHECK(g->get_int("llama.attention.head_count_kv") == 3);
  CHECK(g->get_int("llama.context_length") == 8192);
  CHECK(g->get_float("llama.rope.freq_base") == 100000.0);
  CHECK(g->get_float("llama.attention.layer_norm_rms_epsilon") == Approx(1e-5));
  CHECK(g->get_bool("tokenizer.ggml.add_bos_token") == false);
  CHECK(g->get_string("tokenizer.ggml.pre") == "smollm");
  CHECK(g->get_int("tokenizer.ggml.eos_token_id") == 2);
  CHECK_FALSE(g->get_int("no.such.key").has_value());
  CHECK(g->get_string("tokenizer.chat_template")->rfind("{% for message in messages %}", 0) == 0);

  const auto tokens = g->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.size() == 49152);
  CHECK(tokens[0] == "<|endoftext|>");
  CHECK(tokens[1] == "<|im_start|>");
  CHECK(tokens[2] == "<|im_end|>");
  const auto merges = g->get_string_array("tokenizer.ggml.merges");
  REQUIRE(merges.size() == 48900);
  CHECK(merges[0] == "\xc4\xa0 t");  // "Ġ t"
  const auto types = g->get_int_array("tokenizer.ggml.token_type");
  REQUIRE(types.size() == 49152);
  CHECK(types[0] == 3);  // control

  // Wrong-type access names the file and the key.
  try {
    (void)g->get_string("llama.block_count");
    FAIL("expected a type error");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kCorruptFile);
    CHECK(std::string(e.what()).find("llama.block_count") != std::string::npos);
    CHECK(std::string(e.what()).find(kModel) != std::string::npos);
  }
  CHECK_THROWS_AS(g->get_int_array("tokenizer.ggml.tokens"), tessera::Error);
}

TEST_CASE("GGUF: default model tensor table and data", "[gguf]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  auto g = tessera::GgufFile::open(kModel);
  int n_q41 = 0, n_f32 = 0, n_q80 = 0;
  for (const auto& t : g->tensors()) {
    CHECK(t.supported);
    n_q41 += t.dtype == tessera::DType::kQ4_1;
    n_f32 += t.dtype == tessera::DType::kF32;
    n_q80 += t.dtype == tessera::DType::kQ8_0;
  }
  CHECK(n_q41 == 210);
  CHECK(n_f32 == 61);
  CHECK(n_q80 == 1);
  CHECK(g->find_tensor("output.weight") == nullptr);  // tied embeddings

  const auto* emb = g->find_tensor("token_embd.weight");
  REQUIRE(emb != nullptr);
  CHECK(emb->type_name == "q8_0");
  CHECK(emb->dims == std::vector<int64_t>{576, 49152});
  CHECK(emb->offset == 0);
  CHECK(emb->nbytes == 49152u * 576 / 32 * 34);
  CHECK(emb->num_elements() == 49152 * 576);

  const auto* down = g->find_tensor("blk.0.ffn_down.weight");
  REQUIRE(down != nullptr);
  CHECK(down->dtype == tessera::DType::kQ4_1);
  CHECK(down->dims == std::vector<int64_t>{1536, 576});
  CHECK(down->offset == 30083328);
  CHECK(down->nbytes == 576u * 1536 / 32 * 20);

  // The mmap'd view holds the same bytes as the file at data_offset + offset.
  for (const char* name : {"output_norm.weight", "blk.29.ffn_up.weight", "token_embd.weight"}) {
    const auto* t = g->find_tensor(name);
    REQUIRE(t != nullptr);
    const auto expect = read_bytes(kModel, g->data_offset() + t->offset, 64);
    CHECK(std::vector<uint8_t>(t->data, t->data + 64) == expect);
  }
  const auto* norm = g->find_tensor("output_norm.weight");
  CHECK(norm->data + norm->nbytes <= g->tensors()[0].data - g->data_offset() + g->file_size());
}

TEST_CASE("GGUF: open reports missing files and non-GGUF files", "[gguf]") {
  try {
    tessera::GgufFile::open("/nonexistent/model.gguf");
    FAIL("expected an error");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kNotFound);
    CHECK(std::string(e.what()).find("/nonexistent/model.gguf") != std::string::npos);
  }
  const std::string path = std::filesystem::temp_directory_path() / "tessera_not_gguf.gguf";
  {
    std::ofstream f(path);
    f << "this is not a gguf file at all";
  }
  try {
    tessera::GgufFile::open(path);
    FAIL("expected an error");
  } catch (const tessera::Error& e) {
    CHECK(e.kind() == tessera::ErrorKind::kCorruptFile);
    CHECK(std::string(e.what()).find("bad magic") != std::string::npos);
  }
  { std::ofstream f(path, std::ios::trunc); }
  CHECK_THROWS_AS(tessera::GgufFile::open(path), tessera::Error);  // empty file
  std::remove(path.c_str());
}
