// The CUDA backend's factories in a build without it (TESSERA_CUDA=OFF).
#include "common/error.h"
#include "kernels/ops.h"

namespace tessera {

#ifndef TESSERA_HAVE_CUDA
std::unique_ptr<Ops> make_cuda_ops(int) {
  throw Error(ErrorKind::kUnsupported, "this tessera was built without CUDA (TESSERA_CUDA=OFF)");
}
bool cuda_available() {
  return false;
}
#endif

}  // namespace tessera
