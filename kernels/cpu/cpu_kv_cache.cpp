#include "kernels/cpu/cpu_kv_cache.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace tessera::cpu {

CpuKvCache::CpuKvCache(const Ops& owner, const KvCacheShape& shape) : KvCache(owner, shape) {
  validate_kv_shape(shape);
  const size_t rows = block_rows() * shape.num_blocks * 2 * shape.num_layers;
  // Zeroed (scales too) so a never-written slot reads as 0, never as NaN.
  data_.assign(rows * shape.head_dim * kv_elem_bytes(shape.dtype), 0);
  if (kv_dtype_has_scales(shape.dtype)) scales_.assign(rows, 0.0f);
}

size_t CpuKvCache::block_rows() const {
  return size_t(shape().block_size) * shape().num_kv_heads;
}

PagedKv CpuKvCache::layer(int layer, const AttentionParams& attn) const {
  const KvCacheShape& s = shape();
  if (layer < 0 || layer >= s.num_layers || attn.num_kv_heads != s.num_kv_heads ||
      attn.head_dim != s.head_dim || attn.num_heads % attn.num_kv_heads != 0) {
    throw Error(ErrorKind::kInvalidArgument,
                "attention layer/heads do not match the KV cache shape");
  }
  const size_t pool_rows = block_rows() * s.num_blocks;
  const size_t pool_bytes = pool_rows * s.head_dim * kv_elem_bytes(s.dtype);
  auto* base = const_cast<uint8_t*>(data_.data()) + 2 * size_t(layer) * pool_bytes;
  PagedKv kv;
  kv.dtype = s.dtype;
  kv.k = base;
  kv.v = base + pool_bytes;
  if (!scales_.empty()) {
    float* sb = const_cast<float*>(scales_.data()) + 2 * size_t(layer) * pool_rows;
    kv.k_scale = sb;
    kv.v_scale = sb + pool_rows;
  }
  kv.block_size = s.block_size;
  kv.num_kv_heads = s.num_kv_heads;
  kv.head_dim = s.head_dim;
  return kv;
}

void CpuKvCache::copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) {
  const KvCacheShape& s = shape();
  const size_t rows = block_rows();
  const size_t bytes = rows * s.head_dim * kv_elem_bytes(s.dtype);
  for (const auto& [src, dst] : src_dst) {
    for (int32_t b : {src, dst}) {
      if (b < 0 || b >= s.num_blocks) {
        throw Error(ErrorKind::kInvalidArgument, "KV block id " + std::to_string(b) +
                                                     " is outside the pool of " +
                                                     std::to_string(s.num_blocks));
      }
    }
    for (size_t pool = 0; pool < size_t(2) * s.num_layers; ++pool) {
      uint8_t* base = data_.data() + pool * s.num_blocks * bytes;
      std::memcpy(base + dst * bytes, base + src * bytes, bytes);
      if (!scales_.empty()) {
        float* sb = scales_.data() + pool * s.num_blocks * rows;
        std::memcpy(sb + dst * rows, sb + src * rows, rows * sizeof(float));
      }
    }
  }
}

}  // namespace tessera::cpu
