#pragma once
// The CUDA backend's KV cache (kernels/kv_cache.h): one device allocation holding, per layer,
// the K pool then the V pool, [num_layers][2][num_blocks][block_size, num_kv_heads, head_dim]
// elements, followed (8-bit dtypes) by their per-(token, head) f32 scales laid out the same
// way, [num_layers][2][num_blocks][block_size, num_kv_heads].
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/dtype.h"
#include "kernels/kv_cache.h"

namespace tessera::cuda {

class CudaOps;

class CudaKvCache final : public KvCache {
 public:
  // shape.dtype must already be resolved. Zeroes the memory on `stream`.
  CudaKvCache(CudaOps& owner, const KvCacheShape& shape, cudaStream_t stream);
  ~CudaKvCache() override;

  void* k_pool(int layer) const { return pool(2 * layer); }
  void* v_pool(int layer) const { return pool(2 * layer + 1); }
  // Per-(slot, head) scales of a layer's K or V pool; nullptr unless the dtype is 8-bit.
  float* k_scales(int layer) const { return scales(2 * layer); }
  float* v_scales(int layer) const { return scales(2 * layer + 1); }

  void* base() const { return base_; }
  size_t pool_bytes() const { return pool_bytes_; }    // one K or V pool of one layer
  size_t scale_bytes() const { return scale_bytes_; }  // its scales (0 when none)
  size_t total_bytes() const { return 2 * shape().num_layers * (pool_bytes_ + scale_bytes_); }

 private:
  void* pool(int i) const { return static_cast<char*>(base_) + pool_bytes_ * size_t(i); }
  float* scales(int i) const;

  CudaOps& ops_;
  void* base_ = nullptr;
  size_t pool_bytes_ = 0;
  size_t scale_bytes_ = 0;
};

}  // namespace tessera::cuda
