// Quantized Hugging Face folders (FP8 compressed-tensors and "fp8", AWQ GEMM, GPTQ sym /
// asym / act order / v2) load into Tessera's canonical layouts: decoding each projection by
// kernels/weight_scheme.h gives the weights numpy decoded from the checkpoint's own packing
// (scripts/quant_fixtures_hf.py), and the scheme fields say what the checkpoint is.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/loader.h"
#include "quant_fixtures.h"

namespace {

void check_folder(const std::string& name) {
  const std::string dir = quant_test::fixtures_dir() + "/" + name;
  const tessera::LoadedModel m = tessera::load_model(dir);
  const auto ref = quant_test::reference(dir + "/reference.safetensors");
  std::ifstream f(dir + "/expect.json");
  const nlohmann::json expect = nlohmann::json::parse(f);
  REQUIRE(expect.size() == 7);
  for (const auto& [weight, e] : expect.items()) {
    INFO(name << ": " << weight);
    const tessera::HostTensor& t = m.weights.get(weight);
    const tessera::QuantScheme& s = t.scheme;
    CHECK(tessera::quant_kind_name(s.kind) == e["kind"].get<std::string>());
    if (e["kind"] == "fp8") {
      CHECK(s.per_channel == e["per_channel"].get<bool>());
      CHECK(s.act_scale == Approx(e["act_scale"].get<double>()).epsilon(1e-7));
    } else {
      CHECK(s.group_size == e["group_size"].get<int>());
      CHECK(s.has_zeros == e["has_zeros"].get<bool>());
      CHECK(s.act_order == e["act_order"].get<bool>());
      CHECK((t.g_idx != nullptr) == s.act_order);
      CHECK((t.zeros != nullptr) == s.has_zeros);
    }
    const std::vector<double> ours = quant_test::decode_canonical(t);
    const std::vector<float> want = ref.values(weight);
    REQUIRE(ours.size() == want.size());
    int bad = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      bad += std::fabs(ours[i] - want[i]) > 1e-6 * std::fabs(want[i]) + 1e-12;
    }
    CHECK(bad == 0);
  }
  // Embeddings, norms and the LM head stay dense bf16.
  CHECK(m.weights.get("token_embd.weight").scheme.kind == tessera::QuantKind::kDense);
  CHECK(m.weights.get("output.weight").dtype == tessera::DType::kBF16);
}

}  // namespace

TEST_CASE("loader: FP8 checkpoints (compressed-tensors, fp8)", "[loader][quant][fp8]") {
  for (const char* name :
       {"fp8_ct_tensor_static", "fp8_ct_channel_dynamic", "fp8_kind_static", "fp8_kind_dynamic"}) {
    check_folder(name);
  }
}

TEST_CASE("loader: AWQ GEMM checkpoint", "[loader][quant][awq]") {
  check_folder("awq_gemm");
}

TEST_CASE("loader: GPTQ checkpoints (sym, asym + act order, v2)", "[loader][quant][gptq]") {
  for (const char* name : {"gptq_sym", "gptq_asym_actorder", "gptq_v2_asym"}) check_folder(name);
}

TEST_CASE("loader: unsupported quantization configs are named", "[loader][quant]") {
  namespace fs = std::filesystem;
  const std::string src = quant_test::fixtures_dir() + "/gptq_sym";
  const fs::path dir = fs::temp_directory_path() / "tessera_quant_bad_config";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(src + "/model.safetensors", dir / "model.safetensors");
  std::ifstream in(src + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  auto expect_error = [&](const nlohmann::json& q, const std::string& words) {
    config["quantization_config"] = q;
    std::ofstream(dir / "config.json") << config.dump();
    try {
      tessera::load_model(dir.string());
      FAIL("loaded " << q.dump());
    } catch (const tessera::Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(words) != std::string::npos);
    }
  };
  expect_error({{"quant_method", "bitsandbytes"}}, "bitsandbytes");
  expect_error({{"quant_method", "gptq"}, {"bits", 3}, {"group_size", 128}}, "3 bits");
  expect_error({{"quant_method", "awq"}, {"bits", 4}, {"version", "gemv"}}, "gemv");
  expect_error({{"quant_method", "fp8"}, {"weight_block_size", {128, 128}}}, "block");
  fs::remove_all(dir);
}
