// load_model for Hugging Face folders: config.json + model.safetensors, or shards listed in
// model.safetensors.index.json. Weights are views into the mmap'd shards, renamed to the
// canonical GGUF names. HF Llama keeps Q/K in rotate-halves order, so rope.neox = true.
// Quantized checkpoints (quantization_config) have their Linears converted first
// (model/quant_hf.h); everything else must be a dense Llama weight.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "model/loader.h"
#include "model/quant_hf.h"
#include "model/safetensors_file.h"
#include "model/tokenizer.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorKind::kNotFound, path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kCorruptFile, path.string() + ": invalid JSON: " + e.what());
  }
}

// Shard file names, from the index when there is one.
std::vector<std::string> shard_files(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (!fs::exists(index)) {
    if (!fs::exists(dir / "model.safetensors")) {
      throw Error(ErrorKind::kNotFound,
                  dir.string() + ": neither model.safetensors nor model.safetensors.index.json");
    }
    return {"model.safetensors"};
  }
  const nlohmann::json j = read_json(index);
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw Error(ErrorKind::kCorruptFile, index.string() + ": no weight_map object");
  }
  std::set<std::string> files;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos) {
      throw Error(ErrorKind::kCorruptFile,
                  index.string() + ": weight_map entry '" + name + "' is not a file name");
    }
    files.insert(file.get<std::string>());
  }
  return {files.begin(), files.end()};
}

DType float_dtype(const SafetensorsFile& file, const SafetensorsTensor& t) {
  if (t.dtype == "F32") return DType::kF32;
  if (t.dtype == "F16") return DType::kF16;
  if (t.dtype == "BF16") return DType::kBF16;
  throw Error(ErrorKind::kUnsupported, file.path() + ": tensor '" + t.name + "' has dtype " +
                                           t.dtype + " (supported: F32, F16, BF16)");
}

void add_tensor(const SafetensorsFile& file, const SafetensorsTensor& t, WeightSet& weights) {
  const std::string name = canonical_weight_name(t.name);
  if (name.empty()) {
    // Old checkpoints carry the RoPE inverse frequencies; they are recomputed, not read.
    if (t.name.find("rotary_emb.inv_freq") != std::string::npos) return;
    throw Error(ErrorKind::kUnsupported,
                file.path() + ": unexpected tensor '" + t.name + "' (not a Llama weight)");
  }
  if (t.shape.empty() || t.shape.size() > 2) {
    throw Error(ErrorKind::kCorruptFile,
                file.path() + ": tensor '" + t.name + "' is not 1-D or 2-D");
  }
  HostTensor view;
  view.dtype = float_dtype(file, t);
  view.rows = t.shape.size() == 2 ? t.shape[0] : 1;
  view.cols = t.shape.back();
  view.data = t.data;
  if (!weights.tensors.emplace(name, view).second) {
    throw Error(ErrorKind::kCorruptFile, file.path() + ": tensor '" + t.name + "' appears twice");
  }
}

}  // namespace

LoadedModel load_hf_model(const std::string& dir_str) {
  const fs::path dir(dir_str);
  LoadedModel model;
  model.source = dir_str;
  HfQuantConfig quant;
  try {
    const nlohmann::json config = read_json(dir / "config.json");
    model.config = ModelConfig::from_hf_json(config);
    model.config.validate();
    quant = parse_hf_quant_config(config);
  } catch (const Error& e) {
    throw Error(e.kind(), (dir / "config.json").string() + ": " + e.what());
  }
  if (model.config.name == "llama") model.config.name = dir.filename().string();
  HfTensorMap tensors;
  for (const std::string& shard : shard_files(dir)) {
    std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open((dir / shard).string());
    for (const auto& [name, t] : file->tensors()) {
      if (!tensors.emplace(name, HfTensorRef{file.get(), &t}).second) {
        throw Error(ErrorKind::kCorruptFile,
                    file->path() + ": tensor '" + name + "' appears twice");
      }
    }
    model.weights.storage.push_back(file);
  }
  load_hf_quantized(quant, tensors, model.weights);
  for (const auto& [name, ref] : tensors) add_tensor(*ref.file, *ref.tensor, model.weights);
  // A tied model may still store lm_head (a copy of the embedding); the config decides.
  if (model.config.tied_embeddings) model.weights.tensors.erase("output.weight");
  check_weights(model.config, model.weights, dir_str);
  // The tokenizer is optional: a folder of weights alone still runs on token ids.
  if (fs::exists(dir / "tokenizer.json")) {
    const fs::path config = dir / "tokenizer_config.json";
    model.tokenizer = Tokenizer::from_hf_files((dir / "tokenizer.json").string(),
                                               fs::exists(config) ? config.string() : "");
  }
  return model;
}

}  // namespace tessera
