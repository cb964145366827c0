#pragma once
// Loads the model as one tensor-parallel rank sees it: the whole file is opened (mmap, so
// only the pages of this rank's slices are read), the rank's shard is computed from the
// config, and LlamaModel uploads just those slices. world == 1 is the plain model.
#include <memory>
#include <string>

#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/tp_shard.h"
#include "model/weights.h"

namespace tessera {

struct TpModel {
  LoadedModel loaded;
  TpShard shard;
  std::unique_ptr<LlamaModel> model;
};

// The MLP split's alignment: storage blocks / quantization groups of the down projection.
int64_t tp_ffn_alignment(const WeightSet& weights);

TpModel load_tp_model(const std::string& path, const std::string& quantization, Ops& ops, int rank,
                      int world);

}  // namespace tessera
