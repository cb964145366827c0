#pragma once
// Host-side status checks for the CUDA backend: every runtime and cuBLASLt call goes through
// one of these, so a failure becomes a typed Error naming the call site.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <source_location>
#include <string>

#include "common/error.h"

namespace tessera::cuda {

inline void check_cuda(cudaError_t status, const char* what,
                       std::source_location where = std::source_location::current()) {
  if (status != cudaSuccess) {
    throw Error(ErrorKind::kInternal,
                std::string(what) + ": " + cudaGetErrorName(status) + " (" +
                    cudaGetErrorString(status) + ")",
                where);
  }
}

inline void check_cublas(cublasStatus_t status, const char* what,
                         std::source_location where = std::source_location::current()) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(ErrorKind::kInternal,
                std::string(what) + ": cuBLASLt status " + std::to_string(static_cast<int>(status)),
                where);
  }
}

}  // namespace tessera::cuda
