#pragma once
// The CPU backend's KV cache (kernels/kv_cache.h): one host allocation for the pools of every
// layer (K then V per layer) and, for the 8-bit dtypes, one for their per-(token, head) scales.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/kv_cache.h"

namespace tessera::cpu {

class CpuKvCache final : public KvCache {
 public:
  // shape.dtype must already be resolved (kF32, kFp8 or kInt8).
  CpuKvCache(const Ops& owner, const KvCacheShape& shape);

  // This layer's pools; throws Error(kInvalidArgument) when layer or heads do not match.
  PagedKv layer(int layer, const AttentionParams& attn) const;
  void copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst);

 private:
  size_t block_rows() const;   // (token, head) rows per block
  std::vector<uint8_t> data_;  // [layers][K, V][num_blocks][block rows][head_dim] elements
  std::vector<float> scales_;  // [layers][K, V][num_blocks][block rows]; empty unless 8-bit
};

}  // namespace tessera::cpu
