// load_model for .gguf files: config from metadata, weights as views into the mmap.
#include "common/error.h"
#include "model/gguf_config.h"
#include "model/gguf_file.h"
#include "model/loader.h"
#include "model/tokenizer.h"

namespace tessera {

LoadedModel load_gguf_model(const std::string& path) {
  std::shared_ptr<GgufFile> gguf = GgufFile::open(path);
  LoadedModel model;
  model.source = path;
  model.config = model_config_from_gguf(*gguf);
  for (const WeightSpec& spec : expected_weights(model.config)) {
    const GgufTensorInfo* t = gguf->find_tensor(spec.name);
    if (t == nullptr) {
      throw Error(ErrorKind::kCorruptFile, path + ": missing tensor '" + spec.name + "'");
    }
    if (!t->supported) {
      throw Error(ErrorKind::kUnsupported,
                  path + ": tensor '" + spec.name + "' has type " + t->type_name +
                      ", which Tessera does not support (f32, f16, bf16, q8_0, q4_0, q4_1, q4_K, q5_K, q6_K)");
    }
    if (t->dims.size() > 2) {
      throw Error(ErrorKind::kCorruptFile, path + ": tensor '" + spec.name + "' is not 2-D");
    }
    // GGUF lists the contiguous axis first: dims = [cols, rows].
    HostTensor view;
    view.dtype = t->dtype;
    view.cols = t->dims[0];
    view.rows = t->dims.size() == 2 ? t->dims[1] : 1;
    view.data = t->data;
    model.weights.tensors.emplace(spec.name, view);
  }
  check_weights(model.config, model.weights, path);
  // A GGUF without a vocabulary (test models) still runs on token ids.
  if (gguf->has("tokenizer.ggml.tokens")) model.tokenizer = Tokenizer::from_gguf(*gguf);
  model.weights.storage.push_back(gguf);  // owns the mmap the views point into
  return model;
}

}  // namespace tessera
