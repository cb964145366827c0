#pragma once
// The engine streams of one API request (one per prompt of a batched completion), read as a
// single sequence of events with global choice indices (prompt p, sample i -> p * n + i).
#include <functional>
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
  // The next event already produced, without waiting; nullopt when there is none (yet).
  std::optional<Item> poll();
  // `fn` runs (on the engine thread) whenever any stream gets an event; false when a stream
  // cannot notify, so the reader must poll. Cleared when the group is destroyed.
  bool set_listener(const std::function<void()>& fn);
  bool done() const;
  void cancel();
  int num_choices() const { return static_cast<int>(streams_.size()) * n_; }
  const std::vector<int>& prompt_lengths() const { return prompt_lengths_; }

 private:
  std::vector<std::shared_ptr<ResultStream>> streams_;
  std::vector<int> prompt_lengths_;
  int n_ = 1;
  size_t cursor_ = 0;  // round-robin start, so no prompt's stream starves the others
  bool listening_ = false;
};

}  // namespace tessera
