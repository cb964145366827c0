#include "kernels/ops.h"

#include "common/error.h"

namespace tessera {

size_t Ops::activation_bytes(int64_t elems) const {
  return dtype_row_bytes(activation_dtype(), elems);
}

#ifndef TESSERA_HAVE_CUDA
std::unique_ptr<Ops> make_cuda_ops(int) {
  throw Error(ErrorKind::kUnsupported, "this tessera was built without CUDA (TESSERA_CUDA=OFF)");
}
bool cuda_available() {
  return false;
}
#endif

}  // namespace tessera
