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
  // A group dropped before its streams finished (client gone, error) must not keep running.
  if (!done()) cancel();
}

std::optional<StreamGroup::Item> StreamGroup::next(std::chrono::milliseconds timeout) {
  if (streams_.size() == 1) {
    auto ev = streams_[0]->next(timeout);
    if (!ev) return std::nullopt;
    int choice = ev->index;
    return Item{choice, std::move(*ev)};
  }
  // Several prompts: poll each in turn with a short slice of the timeout.
  const auto deadline = Clock::now() + timeout;
  const auto slice = std::chrono::milliseconds(2);
  do {
    bool any_live = false;
    for (size_t k = 0; k < streams_.size(); ++k) {
      size_t s = (cursor_ + k) % streams_.size();
      if (streams_[s]->done()) continue;
      any_live = true;
      if (auto ev = streams_[s]->next(std::chrono::milliseconds(0))) {
        cursor_ = (s + 1) % streams_.size();
        int choice = static_cast<int>(s) * n_ + ev->index;
        return Item{choice, std::move(*ev)};
      }
    }
    if (!any_live) return std::nullopt;
    // Nothing ready: wait on one live stream for a slice (cheaper than spinning).
    for (size_t k = 0; k < streams_.size(); ++k) {
      size_t s = (cursor_ + k) % streams_.size();
      if (streams_[s]->done()) continue;
      if (auto ev = streams_[s]->next(slice)) {
        cursor_ = (s + 1) % streams_.size();
        int choice = static_cast<int>(s) * n_ + ev->index;
        return Item{choice, std::move(*ev)};
      }
      break;
    }
  } while (Clock::now() < deadline);
  return std::nullopt;
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
