// CudaOps' sampler: specs and penalty histories staged in pinned memory and uploaded in one
// copy; penalties, sampling and logprobs on the device; tokens (and logprobs) copied back.
// sample_on_device waits for them; sample_async returns at once and collect_sampled delivers
// them later (pipelined steps).
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

void invalid(const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, what);
}

size_t align8(size_t n) {
  return (n + 7) & ~size_t(7);
}

void check_spec(const SampleSpec& s, int previous_rows) {
  if (!std::isfinite(s.temperature) || !(s.top_p > 0.f && s.top_p <= 1.f) || s.top_k < 0)
    invalid("sample: temperature must be finite, top_p in (0, 1], top_k >= 0");
  if (!(s.min_p >= 0.f && s.min_p <= 1.f)) invalid("sample: min_p must be in [0, 1]");
  if (!(std::isfinite(s.repetition_penalty) && s.repetition_penalty > 0.f) ||
      !std::isfinite(s.presence_penalty) || !std::isfinite(s.frequency_penalty))
    invalid("sample: penalties must be finite and repetition_penalty > 0");
  if (s.logprobs > kMaxSampleLogprobs)
    invalid("sample: logprobs must be at most " + std::to_string(kMaxSampleLogprobs));
  if (s.penalized() && s.pending_row >= previous_rows)
    invalid("sample: pending_row is not a row of the previous sampling");
}

}  // namespace

CudaOps::SampleStage CudaOps::stage_sample(std::span<const SampleSpec> specs,
                                           PinnedBuffer& staging) const {
  SampleStage st;
  st.rows = static_cast<int>(specs.size());
  size_t history = 0;
  for (const SampleSpec& s : specs) {
    check_spec(s, sample_out_rows_);
    if (s.penalized()) history += s.prompt.size() + s.output.size() + s.output_extra.size();
    st.logprobs = st.logprobs || s.logprobs >= 0;
  }
  if (history > size_t(INT32_MAX)) invalid("sample: penalty histories too long");
  const size_t spec_bytes = specs.size() * sizeof(DeviceSampleSpec);
  st.upload = align8(spec_bytes + history * 4);
  st.tokens = st.upload;
  st.logprob_rows = align8(st.tokens + specs.size() * 4);
  st.total = st.logprob_rows + (st.logprobs ? specs.size() * sizeof(SampledLogprobs) : 0);
  staging.reserve(st.total);

  auto* d = static_cast<DeviceSampleSpec*>(staging.ptr);
  auto* hist = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(staging.ptr) + spec_bytes);
  int64_t at = 0;
  auto append = [&](std::span<const int32_t> t) {
    if (!t.empty()) std::memcpy(hist + at, t.data(), t.size() * 4);
    at += static_cast<int64_t>(t.size());
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    const SampleSpec& s = specs[i];
    DeviceSampleSpec& o = d[i];
    o = DeviceSampleSpec{};
    o.temperature = s.temperature;
    o.top_k = s.top_k;
    o.top_p = s.top_p;
    o.uniform = sample_uniform(s.seed, s.offset);
    o.min_p = s.min_p;
    o.logprobs = s.logprobs;
    if (!s.penalized()) continue;
    o.repetition_penalty = s.repetition_penalty;
    o.presence_penalty = s.presence_penalty;
    o.frequency_penalty = s.frequency_penalty;
    o.pen_slot = st.pen_slots++;
    o.num_prompt = static_cast<int>(s.prompt.size());
    o.num_output = static_cast<int>(s.output.size() + s.output_extra.size());
    o.pending_row = s.pending_row;
    o.history = at;
    append(s.prompt);
    append(s.output);
    append(s.output_extra);
  }
  return st;
}

void CudaOps::enqueue_sample(const float* logits, int vocab, const SampleStage& st,
                             uint8_t* staging) {
  const int rows = st.rows;
  sample_in_dev_.reserve(st.upload);
  check_cuda(
      cudaMemcpyAsync(sample_in_dev_.ptr, staging, st.upload, cudaMemcpyHostToDevice, stream_),
      "sample specs upload");
  const auto* specs = static_cast<const DeviceSampleSpec*>(sample_in_dev_.ptr);
  float* penalized = nullptr;
  if (st.pen_slots > 0) {
    const size_t bytes = size_t(st.pen_slots) * size_t(vocab) * 4;
    sample_pen_dev_.reserve(bytes);
    if (sample_counts_dev_.reserve(bytes))
      check_cuda(cudaMemsetAsync(sample_counts_dev_.ptr, 0, sample_counts_dev_.bytes, stream_),
                 "penalty counts clear");
    penalized = static_cast<float*>(sample_pen_dev_.ptr);
    // Reads the previous sampling's tokens (pending_row) before this one replaces them.
    check_cuda(launch_penalize(logits, rows, vocab, specs,
                               reinterpret_cast<const int32_t*>(
                                   static_cast<const uint8_t*>(sample_in_dev_.ptr) +
                                   rows * sizeof(DeviceSampleSpec)),
                               static_cast<const int32_t*>(sample_out_dev_.ptr), penalized,
                               static_cast<int32_t*>(sample_counts_dev_.ptr), stream_),
               "penalties");
  }
  sample_out_dev_.reserve(size_t(rows) * 4);
  auto* tokens = static_cast<int32_t*>(sample_out_dev_.ptr);
  check_cuda(launch_sample(logits, penalized, rows, vocab, specs, tokens, stream_), "sample");
  sample_out_rows_ = rows;
  check_cuda(cudaMemcpyAsync(staging + st.tokens, tokens, size_t(rows) * 4, cudaMemcpyDeviceToHost,
                             stream_),
             "sampled tokens");
  if (st.logprobs) {
    const size_t bytes = size_t(rows) * sizeof(SampledLogprobs);
    sample_lp_dev_.reserve(bytes);
    auto* lp = static_cast<SampledLogprobs*>(sample_lp_dev_.ptr);
    check_cuda(launch_logprobs(logits, rows, vocab, specs, tokens, lp, stream_), "logprobs");
    check_cuda(
        cudaMemcpyAsync(staging + st.logprob_rows, lp, bytes, cudaMemcpyDeviceToHost, stream_),
        "sampled logprobs");
  }
}

namespace {

// A template: SampleStage is CudaOps' private type.
template <class Stage>
void deliver(const uint8_t* staging, const Stage& st, std::span<int32_t> tokens,
             std::span<SampledLogprobs> logprobs) {
  std::memcpy(tokens.data(), staging + st.tokens, size_t(st.rows) * 4);
  if (st.logprobs && !logprobs.empty())
    std::memcpy(logprobs.data(), staging + st.logprob_rows,
                size_t(st.rows) * sizeof(SampledLogprobs));
}

}  // namespace

bool CudaOps::sample_on_device(const float* logits, int rows, int vocab,
                               std::span<const SampleSpec> specs, std::span<int32_t> out_tokens,
                               std::span<SampledLogprobs> out_logprobs) {
  if (rows < 0 || specs.size() != static_cast<size_t>(rows) ||
      out_tokens.size() != static_cast<size_t>(rows) || vocab <= 0) {
    invalid("sample_on_device: rows, specs and out_tokens disagree");
  }
  if (rows == 0) return true;
  if (capturing()) invalid("sample_on_device inside graph capture");
  const SampleStage st = stage_sample(specs, sample_host_);
  if (st.logprobs && out_logprobs.size() != static_cast<size_t>(rows))
    invalid("sample_on_device: logprobs asked for, but out_logprobs has not one entry per row");
  auto* staging = static_cast<uint8_t*>(sample_host_.ptr);
  enqueue_sample(logits, vocab, st, staging);
  synchronize();
  deliver(staging, st, out_tokens, out_logprobs);
  return true;
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
  if (slot.done == nullptr)
    check_cuda(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "cudaEventCreate");
  slot.stage = stage_sample(specs, slot.host);
  next_sample_slot_ = 1 - index;
  enqueue_sample(logits, vocab, slot.stage, static_cast<uint8_t*>(slot.host.ptr));
  check_cuda(cudaEventRecord(slot.done, stream_), "cudaEventRecord(sampled)");
  slot.busy = true;
  slots_in_flight_.push_back(index);
  return true;
}

void CudaOps::collect_sampled(std::span<int32_t> out_tokens,
                              std::span<SampledLogprobs> out_logprobs) {
  if (slots_in_flight_.empty()) invalid("collect_sampled: no sampling in flight");
  SampleSlot& slot = sample_slots_[slots_in_flight_.front()];
  if (out_tokens.size() != static_cast<size_t>(slot.stage.rows))
    invalid("collect_sampled: out_tokens differs from the sampled rows");
  if (slot.stage.logprobs && out_logprobs.size() != static_cast<size_t>(slot.stage.rows))
    invalid("collect_sampled: logprobs were asked for, but out_logprobs has not one per row");
  slots_in_flight_.erase(slots_in_flight_.begin());
  slot.busy = false;
  check_cuda(cudaEventSynchronize(slot.done), "sampled tokens");
  deliver(static_cast<const uint8_t*>(slot.host.ptr), slot.stage, out_tokens, out_logprobs);
  account_steps();
}

}  // namespace tessera::cuda
