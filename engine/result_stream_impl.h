#pragma once
// The two halves of a ResultStream:
//   StreamState   shared by the engine (producer) and the client handle (consumer);
//   StreamHandle  what submit() returns. Dropping the last handle cancels the request:
//                 nobody can read its output any more, so its KV blocks are better freed.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "engine/engine.h"

namespace tessera {

class StreamState {
 public:
  // `wake` is called (from any thread) when cancel is requested, so an idle engine loop
  // notices within one tick.
  StreamState(int num_choices, std::function<void()> wake);

  // Engine thread. An event carrying `finish` closes its choice; further events for a
  // closed choice are dropped.
  void push(GenerationEvent event);
  bool choice_finished(int index) const;
  bool all_finished() const;

  // Consumer side (any thread).
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout);
  bool done() const;
  void request_cancel();
  bool cancel_requested() const { return cancel_.load(std::memory_order_acquire); }
  void set_listener(std::function<void()> fn);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  std::vector<bool> finished_;
  int num_finished_ = 0;
  std::atomic<bool> cancel_{false};
  std::function<void()> wake_;
  // Shared so push() can call it after releasing mu_ while set_listener() replaces it.
  std::shared_ptr<const std::function<void()>> listener_;
};

class StreamHandle : public ResultStream {
 public:
  explicit StreamHandle(std::shared_ptr<StreamState> state) : state_(std::move(state)) {}
  ~StreamHandle() override { state_->request_cancel(); }
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout) override {
    return state_->next(timeout);
  }
  bool done() const override { return state_->done(); }
  void cancel() override { state_->request_cancel(); }
  bool set_listener(std::function<void()> fn) override {
    state_->set_listener(std::move(fn));
    return true;
  }

 private:
  std::shared_ptr<StreamState> state_;
};

}  // namespace tessera
