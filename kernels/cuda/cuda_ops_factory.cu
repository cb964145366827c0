#include <cuda_runtime.h>

#include "common/error.h"
#include "kernels/ops.h"

namespace tessera {

bool cuda_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Placeholder until the CUDA backend lands.
std::unique_ptr<Ops> make_cuda_ops(int) {
  throw Error(ErrorKind::kUnsupported, "the CUDA backend is not built yet");
}

}  // namespace tessera
