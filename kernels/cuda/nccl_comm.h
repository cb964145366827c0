#pragma once
// One NCCL communicator bound to a CUDA stream: the collectives of tensor parallelism
// (all-reduce of the row-parallel partial sums, all-gather of the vocabulary-parallel
// logits), issued on the backend's stream so CUDA graphs capture them like any kernel.
// The unique id travels from rank 0 to the workers over the TP channel (engine/tp_channel.h).
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "kernels/dtype.h"

namespace tessera::cuda {

// A fresh NCCL unique id as bytes (rank 0 makes it once and sends it to every rank).
std::string nccl_unique_id();

class NcclComm {
 public:
  // Blocks until every rank has joined. Throws Error(kInternal) with NCCL's message.
  NcclComm(const std::string& unique_id, int rank, int world, int device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  // In place: buf = sum over ranks of buf ([count] of f32 / f16 / bf16).
  void all_reduce_sum(void* buf, int64_t count, DType dtype, cudaStream_t stream);
  // recv = the ranks' send buffers one after another ([world * count]).
  void all_gather(const void* send, void* recv, int64_t count, DType dtype, cudaStream_t stream);
  // Fails pending work when a peer died: NCCL's own error or a timeout turns into an Error
  // instead of a hang (polled while waiting on the stream).
  void check_async_error();
  // From any thread: aborts the communicator, so collectives in flight (waiting on a dead
  // peer) return with an error instead of hanging. The communicator is unusable afterwards.
  void abort();

 private:
  void* comm_ = nullptr;
  std::atomic<bool> aborted_{false};  // ncclComm_t, kept opaque so this header needs no nccl.h
  int rank_ = 0;
  int world_ = 1;
};

}  // namespace tessera::cuda
