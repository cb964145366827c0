#include "model/weights.h"

#include "common/error.h"

namespace tessera {

const HostTensor& WeightSet::get(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    throw Error(ErrorKind::kCorruptFile, "model has no tensor '" + name + "'");
  }
  return it->second;
}

}  // namespace tessera
