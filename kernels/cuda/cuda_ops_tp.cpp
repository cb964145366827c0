// CudaOps' tensor-parallel collectives (kernels/ops.h), over NCCL on the backend's stream.
#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/nccl_comm.h"

namespace tessera::cuda {

std::string CudaOps::make_collective_id() {
  return nccl_unique_id();
}

void CudaOps::join_collectives(const std::string& id, int rank, int world) {
  nccl_ = std::make_unique<NcclComm>(id, rank, world, device_);
  clear_graphs();  // graphs captured before have no collectives in them
}

void CudaOps::abort_collectives() {
  if (nccl_) nccl_->abort();
}

void CudaOps::all_reduce_sum(void* buf, int64_t count) {
  if (!nccl_) throw Error(ErrorKind::kInternal, "all_reduce_sum before join_collectives");
  nccl_->all_reduce_sum(buf, count, activation_dtype(), stream_);
}

}  // namespace tessera::cuda
