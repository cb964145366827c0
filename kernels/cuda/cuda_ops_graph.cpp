// CudaOps' CUDA graphs for decode steps, and what happens when a capture fails: the capture
// is closed and its error cleared, the step size is marked eager for good (one warning), and
// the caller runs the step's ops eagerly (model/llama_model.cpp), so a failed capture costs
// one step's speed instead of wedging every later step.
//
// TESSERA_DEBUG_FAIL_GRAPH_CAPTURE makes every capture fail, to test that path:
//   1 or ops  the first op recorded throws (after an illegal call has invalidated the capture);
//   end       the capture is invalidated just before it ends.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

void misuse(const char* what) {
  throw Error(ErrorKind::kInvalidArgument, what);
}

int debug_capture_fault() {
  static const int mode = [] {
    const char* v = std::getenv("TESSERA_DEBUG_FAIL_GRAPH_CAPTURE");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "0") == 0) return 0;
    return std::strcmp(v, "end") == 0 ? 2 : 1;
  }();
  return mode;
}

}  // namespace

void CudaOps::inject_capture_fault() {
  if (!capturing() || debug_capture_fault() != 1) return;
  throw Error(ErrorKind::kInternal,
              "graph capture failure injected (TESSERA_DEBUG_FAIL_GRAPH_CAPTURE)");
}

uint64_t CudaOps::graph_key(uint64_t key) const {
  // The decode attention plan's split count varies with the context (attention_plan.cpp):
  // a graph per plan shape, so that crossing a split boundary and back does not recapture.
  return key * 1000003u + plan_.decode.items.size() * 7919u + plan_.decode.merges.size();
}

bool CudaOps::graph_replay(uint64_t key) {
  key = graph_key(key);
  auto it = graphs_.find(key);
  if (it == graphs_.end() || !plan_uploaded_ || it->second.signature != signature()) {
    return false;
  }
  check_cuda(cudaGraphLaunch(it->second.exec, stream_), "cudaGraphLaunch");
  return true;
}

bool CudaOps::graph_capture_begin(uint64_t key) {
  if (capturing()) misuse("graph_capture_begin: already capturing");
  // The plan must be on the device before capture (the graph reads it at replay), and one
  // eager step must have created the RoPE tables (no allocation may happen inside capture).
  if (!plan_uploaded_ || inv_freq_.empty()) return false;
  const int tokens = layout_.num_tokens();
  if (eager_sizes_.count(tokens) != 0) return false;
  capture_tokens_ = tokens;
  const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    abandon_capture(cudaGetErrorString(e));
    return false;
  }
  capture_key_ = graph_key(key);
  // A synchronizing call on a capturing stream is illegal and invalidates the capture.
  if (debug_capture_fault() == 1) (void)cudaStreamQuery(stream_);
  return true;
}

bool CudaOps::graph_capture_end() {
  if (!capturing()) misuse("graph_capture_end without graph_capture_begin");
  const uint64_t key = *capture_key_;
  const bool inject = debug_capture_fault() == 2;
  if (inject) (void)cudaStreamQuery(stream_);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  capture_key_.reset();
  if (e != cudaSuccess || graph == nullptr || inject) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    abandon_capture(e != cudaSuccess ? cudaGetErrorString(e)
                                     : "failure injected (TESSERA_DEBUG_FAIL_GRAPH_CAPTURE=end)");
    return false;
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    abandon_capture(cudaGetErrorString(e));
    return false;
  }
  auto it = graphs_.find(key);
  if (it != graphs_.end()) cudaGraphExecDestroy(it->second.exec);
  graphs_[key] = Graph{signature(), exec};
  // Capture only recorded the step: run it once so its outputs exist.
  check_cuda(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");
  return true;
}

void CudaOps::graph_capture_abort() {
  if (capturing()) abandon_capture("an op failed while the step was being captured");
}

void CudaOps::abandon_capture(const char* why) {
  capture_key_.reset();
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &status) == cudaSuccess &&
      status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    (void)cudaStreamEndCapture(stream_, &partial);  // also ends an invalidated capture
    if (partial != nullptr) cudaGraphDestroy(partial);
  }
  // Capture errors are not sticky: clear the last error so later checks do not report it.
  // A sticky one (a faulted kernel) stays and fails the eager step, as it should.
  (void)cudaGetLastError();
  const bool first = eager_sizes_.insert(capture_tokens_).second;
  if (first) {
    std::fprintf(stderr,
                 "tessera: warning: CUDA graph capture of a %d-token decode step failed (%s); "
                 "steps of this size run eagerly from now on\n",
                 capture_tokens_, why);
  }
}

void CudaOps::clear_graphs() {
  for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

}  // namespace tessera::cuda
