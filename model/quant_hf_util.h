#pragma once
// Helpers shared by the quantized Hugging Face converters (model/quant_hf_*.cpp).
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/quant_hf.h"

namespace tessera::hfq {

[[noreturn]] inline void corrupt(const HfTensorRef& t, const std::string& what) {
  throw Error(ErrorKind::kCorruptFile,
              t.file->path() + ": tensor '" + t.tensor->name + "' " + what);
}

// Moves `v` into the weight set's storage; the returned pointer lives as long as the set.
template <typename T>
const T* keep(WeightSet& weights, std::vector<T>&& v) {
  auto owned = std::make_shared<std::vector<T>>(std::move(v));
  const T* p = owned->data();
  weights.storage.push_back(owned);
  return p;
}

inline int64_t numel(const SafetensorsTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n;
}

// Values of an F32 / F16 / BF16 tensor as f32.
std::vector<float> read_floats(const HfTensorRef& t);
// Values of an I32 tensor (the int4 checkpoints' packed words and g_idx).
std::vector<int32_t> read_i32(const HfTensorRef& t);

// The tensor `prefix + suffix`, or nullptr.
const HfTensorRef* find(const HfTensorMap& tensors, const std::string& prefix, const char* suffix);

// Registers a converted Linear under the canonical name of `prefix + ".weight"`.
void add_quantized(const std::string& prefix, const HostTensor& t, const HfTensorRef& origin,
                   WeightSet& weights);

}  // namespace tessera::hfq
