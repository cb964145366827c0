// CudaOps' device timeline for pipelined steps (the engine launches step N + 1 before it
// waits for step N): how long the device ran steps and how long it waited for the host
// between them.
#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

cudaEvent_t CudaOps::take_event() {
  if (!spare_events_.empty()) {
    cudaEvent_t e = spare_events_.back();
    spare_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  check_cuda(cudaEventCreate(&e), "cudaEventCreate(timing)");
  return e;
}

void CudaOps::end_step() {
  if (step_start_ == nullptr || capturing()) return;
  cudaEvent_t end = take_event();
  check_cuda(cudaEventRecord(end, stream_), "cudaEventRecord(step end)");
  marks_.push_back({step_start_, end});
  step_start_ = nullptr;
  account_steps();
}

void CudaOps::account_steps() {
  size_t done = 0;
  for (; done < marks_.size(); ++done) {
    const StepMarks& m = marks_[done];
    const cudaError_t q = cudaEventQuery(m.end);
    if (q == cudaErrorNotReady) {
      if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
      break;
    }
    check_cuda(q, "cudaEventQuery(step end)");
    float busy_ms = 0.f, idle_ms = 0.f;
    check_cuda(cudaEventElapsedTime(&busy_ms, m.start, m.end), "cudaEventElapsedTime");
    if (last_end_ != nullptr) {
      check_cuda(cudaEventElapsedTime(&idle_ms, last_end_, m.start), "cudaEventElapsedTime");
      spare_events_.push_back(last_end_);
    }
    timeline_.busy_seconds += busy_ms * 1e-3;
    timeline_.idle_seconds += std::max(0.f, idle_ms) * 1e-3;
    ++timeline_.steps;
    spare_events_.push_back(m.start);
    last_end_ = m.end;
  }
  marks_.erase(marks_.begin(), marks_.begin() + static_cast<std::ptrdiff_t>(done));
}

void CudaOps::destroy_pipeline_events() {
  for (SampleSlot& slot : sample_slots_)
    if (slot.done) cudaEventDestroy(slot.done);
  for (const StepMarks& m : marks_) {
    cudaEventDestroy(m.start);
    cudaEventDestroy(m.end);
  }
  for (cudaEvent_t e : spare_events_) cudaEventDestroy(e);
  if (step_start_) cudaEventDestroy(step_start_);
  if (last_end_) cudaEventDestroy(last_end_);
}

Ops::DeviceTimeline CudaOps::device_timeline() {
  account_steps();
  return timeline_;
}

}  // namespace tessera::cuda
