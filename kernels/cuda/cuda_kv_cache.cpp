#include "kernels/cuda/cuda_kv_cache.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

CudaKvCache::CudaKvCache(CudaOps& owner, const KvCacheShape& shape, cudaStream_t stream)
    : KvCache(owner, shape), ops_(owner) {
  validate_kv_shape(shape);
  const size_t rows = size_t(shape.num_blocks) * shape.block_size * shape.num_kv_heads;
  pool_bytes_ = rows * shape.head_dim * kv_elem_bytes(shape.dtype);
  scale_bytes_ = kv_dtype_has_scales(shape.dtype) ? rows * sizeof(float) : 0;
  const size_t total = total_bytes();
  const cudaError_t e = cudaMalloc(&base_, total);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    base_ = nullptr;
    throw Error(ErrorKind::kResourceExhausted,
                "KV cache of " + std::to_string(total >> 20) + " MiB does not fit on the GPU");
  }
  check_cuda(e, "cudaMalloc(kv)");
  // Zeroed once so a never-written slot can hold no NaN.
  check_cuda(cudaMemsetAsync(base_, 0, total, stream), "cudaMemset(kv)");
}

CudaKvCache::~CudaKvCache() {
  ops_.forget_kv_cache(this);  // waits for the stream and drops graphs that read this cache
  if (base_) cudaFree(base_);
}

float* CudaKvCache::scales(int i) const {
  if (scale_bytes_ == 0) return nullptr;
  char* first = static_cast<char*>(base_) + pool_bytes_ * 2 * size_t(shape().num_layers);
  return reinterpret_cast<float*>(first + scale_bytes_ * size_t(i));
}

}  // namespace tessera::cuda
