#pragma once
// Stop strings over streamed text. Text arrives in deltas (one per token, already UTF-8
// complete); a stop string may span several deltas. The matcher emits text only once it can
// no longer become part of a stop string, and never emits the stop string itself:
//
//   stops = {"\n\n"}      push("Hi\n") -> emit "Hi", hold "\n"
//                         push("\nX")  -> stop; emit nothing more ("\n\n" and after dropped)
//
// Not thread-safe: owned by one choice on the engine thread.
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string emit;      // safe to stream now
    bool stopped = false;  // a stop string matched; the choice is finished
    std::string matched;   // which stop string
  };

  // Appends a delta. After a stop, further pushes are ignored (empty result, stopped).
  Result push(std::string_view text);
  // The choice ended for another reason (EOS, length): releases the held-back text.
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::string& held() const { return held_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace tessera
