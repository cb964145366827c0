#include "engine/null_tokenizer.h"

#include "common/error.h"

namespace tessera {

NullTokenizer::NullTokenizer(int vocab_size, int eos_id) {
  vocab_size_ = vocab_size;
  eos_id_ = eos_id;
  if (eos_id >= 0) stop_ids_.push_back(eos_id);
}

std::vector<int32_t> NullTokenizer::encode(std::string_view, bool, bool) const {
  throw Error(ErrorKind::kUnsupported, "this model has no tokenizer: send prompts as token ids");
}

}  // namespace tessera
