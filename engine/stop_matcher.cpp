#include "engine/stop_matcher.h"

#include <algorithm>

namespace tessera {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

StopMatcher::Result StopMatcher::push(std::string_view text) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  held_.append(text);
  if (stops_.empty()) {
    r.emit.swap(held_);
    return r;
  }

  // Earliest full match wins; held_ only ever starts where a match could still begin.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const std::string& s : stops_) {
    const size_t pos = held_.find(s);
    if (pos < best) {
      best = pos;
      best_stop = &s;
    }
  }
  if (best_stop != nullptr) {
    r.emit = held_.substr(0, best);
    r.stopped = true;
    r.matched = *best_stop;
    stopped_ = true;
    held_.clear();
    return r;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string. Such a suffix
  // starts on a UTF-8 character boundary because stop strings are valid UTF-8.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    const size_t max_k = std::min(held_.size(), s.size() - 1);
    for (size_t k = max_k; k > keep; --k) {
      if (std::string_view(held_).substr(held_.size() - k) == std::string_view(s).substr(0, k)) {
        keep = k;
        break;
      }
    }
  }
  r.emit = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return r;
}

std::string StopMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  return out;
}

}  // namespace tessera
