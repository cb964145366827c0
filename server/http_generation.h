#pragma once
// One completion in flight: engine events turned into response bytes, pulled by the
// connection whenever the engine signals output. Never blocks; used from one thread at a
// time (the connection's strand).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/http_internal.h"
#include "server/openai_response.h"
#include "server/stream_group.h"

namespace tessera {

class Generation {
 public:
  Generation(std::shared_ptr<StreamGroup> group, ResponseContext rc, bool stream,
             bool include_usage, int n);

  bool streaming() const { return stream_; }
  const std::string& id() const { return rc_.id; }
  // `wake` runs on the engine thread when there is new output; false: poll instead.
  bool set_listener(const std::function<void()>& wake) { return group_->set_listener(wake); }
  // Consumes what the engine has produced. Streaming: returns the SSE text for it (empty when
  // there is nothing to say), ending with `data: [DONE]` once finished. Otherwise: collects
  // it and returns "".
  std::string drain();
  bool finished() const { return finished_; }
  // The whole JSON response (non-streaming), once finished(): 200, or 500 on engine errors.
  HttpReply reply() const;
  void cancel() { group_->cancel(); }

 private:
  void on_event(int choice, const GenerationEvent& ev, std::string& out);

  std::shared_ptr<StreamGroup> group_;
  ResponseContext rc_;
  bool stream_ = false;
  bool include_usage_ = false;
  int n_ = 1;
  bool opened_ = false;
  bool finished_ = false;
  Usage usage_;
  std::vector<int> text_offsets_;
  std::vector<int> counted_;
  std::vector<ChoiceOutput> choices_;  // non-streaming
};

}  // namespace tessera
