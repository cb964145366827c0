#pragma once
// The engine streams of one API request (one per prompt of a batched completion), read as a
// single sequence of events with global choice indices (prompt p, sample i -> p * n + i).
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "engine/engine.h"

namespace tessera {

class StreamGroup {
 public:
  // Submits every request; if one submit throws, the ones already submitted are cancelled
  // and the exception propagates (so a 429 never leaves half a batch running).
  StreamGroup(Engine& engine, std::vector<GenerationRequest> requests);
  ~StreamGroup();

  struct Item {
    int choice = 0;
    GenerationEvent event;
  };
  // Blocks up to `timeout`; nullopt on timeout or when done().
  std::optional<Item> next(std::chrono::milliseconds timeout);
  bool done() const;
  void cancel();
  int num_choices() const { return static_cast<int>(streams_.size()) * n_; }
  const std::vector<int>& prompt_lengths() const { return prompt_lengths_; }

 private:
  std::vector<std::shared_ptr<ResultStream>> streams_;
  std::vector<int> prompt_lengths_;
  int n_ = 1;
  size_t cursor_ = 0;  // round-robin start, so no prompt's stream starves the others
};

}  // namespace tessera
