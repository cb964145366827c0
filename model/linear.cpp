#include "model/linear.h"

#include <vector>

#include "common/error.h"

namespace tessera {

void linear_multi(Ops& ops, const void* x, int rows, std::span<const Linear* const> ls,
                  std::span<void* const> outs) {
  if (ls.size() != outs.size()) {
    throw Error(ErrorKind::kInvalidArgument, "linear_multi: layers and outputs differ in count");
  }
  constexpr size_t kInline = 8;
  const Weight* inline_ws[kInline];
  std::vector<const Weight*> heap;
  const Weight** ws = inline_ws;
  if (ls.size() > kInline) {
    heap.resize(ls.size());
    ws = heap.data();
  }
  for (size_t i = 0; i < ls.size(); ++i) ws[i] = &ls[i]->weight();
  ops.matmul_multi(x, rows, std::span<const Weight* const>(ws, ls.size()), outs);
}

}  // namespace tessera
