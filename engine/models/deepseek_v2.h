// DeepSeek-V2 / V2-Lite / Coder-V2 (model_type "deepseek_v2") and DeepSeek-V3 / R1
// ("deepseek_v3"): Multi-head Latent Attention with YaRN, the MoE feed-forward of the family
// with their routers (deepseek_common.h, router.h), FP8 weights with block scales. V3's
// multi-token-prediction layers (stored after the last layer) are recognised and not run.
#pragma once

#include <memory>

#include "engine/model.h"

namespace moe {

std::unique_ptr<Model> make_deepseek_v2(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                        const LoadOptions& opt);

}  // namespace moe
