#include "server/stream_group.h"

namespace tessera {

StreamGroup::StreamGroup(Engine& engine, std::vector<GenerationRequest> requests) {
  if (!requests.empty()) n_ = requests.front().sampling.n;
  try {
    for (auto& r : requests) {
      prompt_lengths_.push_back(static_cast<int>(r.prompt.size()));
      streams_.push_back(engine.submit(std::move(r)));
    }
  } catch (...) {
    cancel();
    throw;
  }
}

StreamGroup::~StreamGroup() {
  // The listener points at a reader that is going away; the engine may still hold the stream.
  if (listening_) {
    for (const auto& s : streams_) s->set_listener({});
  }
  // A group dropped before its streams finished (client gone, error) must not keep running.
  if (!done()) cancel();
}

std::optional<StreamGroup::Item> StreamGroup::poll() {
  for (size_t k = 0; k < streams_.size(); ++k) {
    const size_t s = (cursor_ + k) % streams_.size();
    if (auto ev = streams_[s]->next(std::chrono::milliseconds(0))) {
      cursor_ = (s + 1) % streams_.size();
      const int choice = static_cast<int>(s) * n_ + ev->index;
      return Item{choice, std::move(*ev)};
    }
  }
  return std::nullopt;
}

bool StreamGroup::set_listener(const std::function<void()>& fn) {
  bool all = true;
  for (const auto& s : streams_) all = s->set_listener(fn) && all;
  listening_ = true;
  return all;
}

bool StreamGroup::done() const {
  for (const auto& s : streams_) {
    if (!s->done()) return false;
  }
  return true;
}

void StreamGroup::cancel() {
  for (const auto& s : streams_) {
    if (!s->done()) s->cancel();
  }
}

}  // namespace tessera
