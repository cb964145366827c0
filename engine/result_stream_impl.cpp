#include "engine/result_stream_impl.h"

namespace tessera {

StreamState::StreamState(int num_choices, std::function<void()> wake)
    : finished_(static_cast<size_t>(num_choices), false), wake_(std::move(wake)) {}

void StreamState::push(GenerationEvent event) {
  std::shared_ptr<const std::function<void()>> listener;
  {
    std::lock_guard lock(mu_);
    const size_t i = static_cast<size_t>(event.index);
    if (i >= finished_.size() || finished_[i]) return;
    if (event.finish) {
      finished_[i] = true;
      ++num_finished_;
    }
    events_.push_back(std::move(event));
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) (*listener)();
}

void StreamState::set_listener(std::function<void()> fn) {
  auto l = fn ? std::make_shared<const std::function<void()>>(std::move(fn)) : nullptr;
  std::lock_guard lock(mu_);
  listener_ = std::move(l);
}

bool StreamState::choice_finished(int index) const {
  std::lock_guard lock(mu_);
  return finished_.at(static_cast<size_t>(index));
}

bool StreamState::all_finished() const {
  std::lock_guard lock(mu_);
  return num_finished_ == static_cast<int>(finished_.size());
}

std::optional<GenerationEvent> StreamState::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] {
    return !events_.empty() || num_finished_ == static_cast<int>(finished_.size());
  });
  if (events_.empty()) return std::nullopt;
  GenerationEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool StreamState::done() const {
  std::lock_guard lock(mu_);
  return events_.empty() && num_finished_ == static_cast<int>(finished_.size());
}

void StreamState::request_cancel() {
  if (cancel_.exchange(true, std::memory_order_acq_rel)) return;
  if (wake_) wake_();
}

}  // namespace tessera
