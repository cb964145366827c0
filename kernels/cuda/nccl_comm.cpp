#include "kernels/cuda/nccl_comm.h"

#include <nccl.h>

#include <cstring>

#include "common/error.h"

namespace tessera::cuda {
namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess && r != ncclInProgress)
    throw Error(ErrorKind::kInternal, std::string("NCCL ") + what + ": " + ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kF16:
      return ncclFloat16;
    case DType::kBF16:
      return ncclBfloat16;
    default:
      throw Error(ErrorKind::kInternal, std::string("NCCL: no collective for ") + dtype_name(t));
  }
}

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "get unique id");
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

NcclComm::NcclComm(const std::string& unique_id, int rank, int world, int device)
    : rank_(rank), world_(world) {
  if (unique_id.size() != sizeof(ncclUniqueId))
    throw Error(ErrorKind::kInternal, "NCCL: unique id of the wrong size");
  ncclUniqueId id;
  std::memcpy(&id, unique_id.data(), sizeof id);
  if (cudaSetDevice(device) != cudaSuccess)
    throw Error(ErrorKind::kInternal, "NCCL: no CUDA device " + std::to_string(device));
  ncclComm_t comm = nullptr;
  check(ncclCommInitRank(&comm, world, id, rank), "init rank");
  comm_ = comm;
}

NcclComm::~NcclComm() {
  if (comm_ == nullptr) return;
  if (aborted_.load()) return;  // ncclCommAbort freed it
  ncclCommDestroy(static_cast<ncclComm_t>(comm_));
}

void NcclComm::abort() {
  if (comm_ == nullptr || aborted_.exchange(true)) return;
  ncclCommAbort(static_cast<ncclComm_t>(comm_));
}

void NcclComm::all_reduce_sum(void* buf, int64_t count, DType dtype, cudaStream_t stream) {
  check(ncclAllReduce(buf, buf, static_cast<size_t>(count), nccl_type(dtype), ncclSum,
                      static_cast<ncclComm_t>(comm_), stream),
        "all-reduce");
}

void NcclComm::all_gather(const void* send, void* recv, int64_t count, DType dtype,
                          cudaStream_t stream) {
  check(ncclAllGather(send, recv, static_cast<size_t>(count), nccl_type(dtype),
                      static_cast<ncclComm_t>(comm_), stream),
        "all-gather");
}

void NcclComm::check_async_error() {
  ncclResult_t async = ncclSuccess;
  check(ncclCommGetAsyncError(static_cast<ncclComm_t>(comm_), &async), "async error query");
  check(async, "peer failure");
}

}  // namespace tessera::cuda
