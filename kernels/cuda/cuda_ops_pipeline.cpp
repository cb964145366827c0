// CudaOps' support for pipelined steps (the engine launches step N + 1 before it waits for
// step N): sampling that returns at once and delivers its tokens later, and the device
// timeline (how long the device ran steps and how long it waited for the host between them).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

void invalid(const char* what) {
  throw Error(ErrorKind::kInvalidArgument, what);
}

}  // namespace

void CudaOps::fill_sample_specs(std::span<const SampleSpec> specs, DeviceSampleSpec* h) const {
  for (size_t i = 0; i < specs.size(); ++i) {
    const SampleSpec& s = specs[i];
    if (!std::isfinite(s.temperature) || !(s.top_p > 0.f && s.top_p <= 1.f) || s.top_k < 0)
      invalid("sample: temperature must be finite, top_p in (0, 1], top_k >= 0");
    h[i] = {s.temperature, s.top_k, s.top_p, sample_uniform(s.seed, s.offset)};
  }
}

void CudaOps::enqueue_sample(const float* logits, int rows, int vocab,
                             const DeviceSampleSpec* host_specs, int32_t* host_out) {
  const size_t spec_bytes = size_t(rows) * sizeof(DeviceSampleSpec);
  sample_specs_dev_.reserve(spec_bytes);
  sample_out_dev_.reserve(size_t(rows) * 4);
  check_cuda(cudaMemcpyAsync(sample_specs_dev_.ptr, host_specs, spec_bytes, cudaMemcpyHostToDevice,
                             stream_),
             "sample specs upload");
  check_cuda(launch_sample(logits, rows, vocab,
                           static_cast<const DeviceSampleSpec*>(sample_specs_dev_.ptr),
                           static_cast<int32_t*>(sample_out_dev_.ptr), stream_),
             "sample");
  sample_out_rows_ = rows;
  check_cuda(cudaMemcpyAsync(host_out, sample_out_dev_.ptr, size_t(rows) * 4,
                             cudaMemcpyDeviceToHost, stream_),
             "sampled tokens");
}

bool CudaOps::sample_async(const float* logits, int rows, int vocab,
                           std::span<const SampleSpec> specs) {
  if (rows <= 0 || specs.size() != static_cast<size_t>(rows) || vocab <= 0)
    invalid("sample_async: rows and specs disagree");
  if (capturing()) invalid("sample_async inside graph capture");
  const int index = next_sample_slot_;
  SampleSlot& slot = sample_slots_[index];
  if (slot.busy)
    throw Error(ErrorKind::kInternal, "sample_async: two samplings are already in flight");
  next_sample_slot_ = 1 - index;
  if (slot.done == nullptr)
    check_cuda(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "cudaEventCreate");
  const size_t spec_bytes = size_t(rows) * sizeof(DeviceSampleSpec);
  slot.host.reserve(spec_bytes + size_t(rows) * 4);
  auto* h = static_cast<DeviceSampleSpec*>(slot.host.ptr);
  fill_sample_specs(specs, h);
  enqueue_sample(logits, rows, vocab, h,
                 reinterpret_cast<int32_t*>(static_cast<uint8_t*>(slot.host.ptr) + spec_bytes));
  check_cuda(cudaEventRecord(slot.done, stream_), "cudaEventRecord(sampled)");
  slot.rows = rows;
  slot.busy = true;
  slots_in_flight_.push_back(index);
  return true;
}

void CudaOps::collect_sampled(std::span<int32_t> out_tokens) {
  if (slots_in_flight_.empty()) invalid("collect_sampled: no sampling in flight");
  SampleSlot& slot = sample_slots_[slots_in_flight_.front()];
  if (out_tokens.size() != static_cast<size_t>(slot.rows))
    invalid("collect_sampled: out_tokens differs from the sampled rows");
  slots_in_flight_.erase(slots_in_flight_.begin());
  slot.busy = false;
  check_cuda(cudaEventSynchronize(slot.done), "sampled tokens");
  const size_t spec_bytes = size_t(slot.rows) * sizeof(DeviceSampleSpec);
  std::memcpy(out_tokens.data(), static_cast<uint8_t*>(slot.host.ptr) + spec_bytes,
              size_t(slot.rows) * 4);
  account_steps();
}

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
