#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

__global__ void gather_rows_kernel(const __nv_bfloat16* x, int dim, const int32_t* rows,
                                   __nv_bfloat16* out) {
  pdl_wait();
  pdl_launch_dependents();
  const uint4* src = reinterpret_cast<const uint4*>(x + int64_t(rows[blockIdx.x]) * dim);
  uint4* dst = reinterpret_cast<uint4*>(out + int64_t(blockIdx.x) * dim);
  for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) dst[i] = src[i];
}

__global__ void copy_kv_blocks_kernel(uint8_t* pools, int num_blocks, size_t block_bytes,
                                      const int2* pairs) {
  pdl_wait();
  pdl_launch_dependents();
  const int2 p = pairs[blockIdx.x];
  // blockIdx.y enumerates (layer, K or V) pools, each num_blocks * block_bytes long.
  uint8_t* pool = pools + size_t(blockIdx.y) * num_blocks * block_bytes;
  const uint4* src = reinterpret_cast<const uint4*>(pool + size_t(p.x) * block_bytes);
  uint4* dst = reinterpret_cast<uint4*>(pool + size_t(p.y) * block_bytes);
  for (size_t i = threadIdx.x; i < block_bytes / 16; i += blockDim.x) dst[i] = src[i];
}

__global__ void feed_tokens_kernel(int32_t* tokens, const int2* pairs, int num_pairs,
                                   const int32_t* sampled) {
  pdl_wait();
  pdl_launch_dependents();
  for (int i = threadIdx.x; i < num_pairs; i += blockDim.x)
    tokens[pairs[i].x] = sampled[pairs[i].y];
}

__global__ void scatter_i32_kernel(int32_t* dst, const int2* updates, int num_updates) {
  pdl_wait();
  pdl_launch_dependents();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < num_updates) dst[updates[i].x] = updates[i].y;
}

}  // namespace

cudaError_t launch_scatter_i32(int32_t* dst, const int2* updates, int num_updates,
                               cudaStream_t stream) {
  if (num_updates == 0) return cudaSuccess;
  return launch_kernel(scatter_i32_kernel, dim3((num_updates + 255) / 256), dim3(256), 0, stream,
                       dst, updates, num_updates);
}

cudaError_t launch_feed_tokens(int32_t* tokens, const int2* pairs, int num_pairs,
                               const int32_t* sampled, cudaStream_t stream) {
  if (num_pairs == 0) return cudaSuccess;
  return launch_kernel(feed_tokens_kernel, dim3(1), dim3(256), 0, stream, tokens, pairs, num_pairs,
                       sampled);
}

cudaError_t launch_gather_rows(const __nv_bfloat16* x, int dim, const int32_t* rows, int num_rows,
                               __nv_bfloat16* out, cudaStream_t stream) {
  if (dim % 8 != 0) return cudaErrorInvalidValue;
  if (num_rows == 0) return cudaSuccess;
  return launch_kernel(gather_rows_kernel, dim3(num_rows), dim3(128), 0, stream, x, dim, rows, out);
}

cudaError_t launch_copy_kv_blocks(void* pools, int num_layers, int num_blocks, size_t block_bytes,
                                  const int2* pairs, int num_pairs, cudaStream_t stream) {
  if (block_bytes % 16 != 0) return cudaErrorInvalidValue;
  if (num_pairs == 0) return cudaSuccess;
  dim3 grid(num_pairs, num_layers * 2);
  return launch_kernel(copy_kv_blocks_kernel, grid, dim3(256), 0, stream,
                       static_cast<uint8_t*>(pools), num_blocks, block_bytes, pairs);
}

}  // namespace tessera::cuda
