#pragma once
// Kernel launches with optional programmatic dependent launch (PDL, Hopper): a kernel may
// be scheduled while its predecessor in the stream is still finishing, and waits in
// pdl_wait() until that predecessor has completed and its writes are visible.
//
// Off by default: on the H200, batch-1 decode of the Llama-3.1-8B shape from CUDA graphs ran
// at 217.3 tok/s with PDL and 221.3 without (bench/results/gpu.md): no gain, so it is opt-in
// (TESSERA_PDL=1). It may pay once kernels do work before pdl_wait(), such as prefetching
// weights, which no predecessor writes; not tried.
//
// Rule for every kernel launched with launch_kernel: call pdl_wait() before its first
// global-memory read or write. Work before it may only touch registers, shared memory and
// kernel arguments.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

namespace tessera::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel in the stream start launching its CTAs (they block in pdl_wait()).
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

inline bool pdl_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TESSERA_PDL");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return enabled;
}

template <typename... KernelArgs, typename... Args>
cudaError_t launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, static_cast<KernelArgs>(args)...);
}

}  // namespace tessera::cuda
