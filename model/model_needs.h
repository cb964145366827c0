#pragma once
// A loaded model's needs in the backend's terms (kernels/ops.h ModelNeeds), so the engine can
// ask the backend whether it can run the model before uploading anything.
#include <string>

#include "kernels/ops.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace tessera {

ModelNeeds model_needs(const std::string& model_name, const ModelConfig& config,
                       const WeightSet& weights);

}  // namespace tessera
