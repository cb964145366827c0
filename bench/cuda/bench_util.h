#pragma once
// Shared helpers for the CUDA benchmarks: random (never zero) device fills, event timing of
// CUDA graphs, medians.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/dequant.h"

namespace tessera::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Fills `bytes` of device memory with random bf16 values N(0, std) by tiling a 16 MiB
// random block (the tiling does not matter to bandwidth; zeros would).
inline void fill_random_bf16(void* dst, size_t bytes, float std, uint64_t seed) {
  constexpr size_t kTile = 16u << 20;
  static std::vector<uint16_t> host;
  static void* tile = nullptr;
  static float tile_std = -1.f;
  if (!tile || tile_std != std) {
    host.resize(kTile / 2);
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> nd(0.f, std);
    for (auto& h : host) h = f32_to_bf16(nd(gen));
    if (!tile) cuda::check_cuda(cudaMalloc(&tile, kTile), "cudaMalloc(tile)");
    cuda::check_cuda(cudaMemcpy(tile, host.data(), kTile, cudaMemcpyHostToDevice), "tile");
    tile_std = std;
  }
  // Offset by the seed so different tensors do not start identically.
  const size_t shift = (seed * 2654435761u) % (kTile / 2) * 2;
  for (size_t off = 0; off < bytes; off += kTile - shift) {
    const size_t n = std::min(kTile - shift, bytes - off);
    cuda::check_cuda(cudaMemcpy(static_cast<uint8_t*>(dst) + off,
                                static_cast<uint8_t*>(tile) + shift, n, cudaMemcpyDeviceToDevice),
                     "fill");
  }
}

// Captures `body` (which issues work on `stream`) into a graph and returns the median time
// of `reps` replays in milliseconds, after `warmup` replays.
inline double time_graph_ms(cudaStream_t stream, const std::function<void()>& body, int reps,
                            int warmup = 3) {
  cudaGraph_t graph;
  cuda::check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  body();
  cuda::check_cuda(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t exec;
  cuda::check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < warmup; ++i) cudaGraphLaunch(exec, stream);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, stream);
    cudaGraphLaunch(exec, stream);
    cudaEventRecord(b, stream);
    cuda::check_cuda(cudaEventSynchronize(b), "event sync");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cuda::check_cuda(cudaGetLastError(), "graph replays");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return median(t);
}

}  // namespace tessera::bench
