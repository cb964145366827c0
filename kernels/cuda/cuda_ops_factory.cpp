#include <cuda_runtime.h>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/ops.h"

namespace tessera {

bool cuda_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

std::unique_ptr<Ops> make_cuda_ops(int device) {
  return std::make_unique<cuda::CudaOps>(device);
}

}  // namespace tessera
