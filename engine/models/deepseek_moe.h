// Architecture "deepseek" (DeepSeekMoE 16B and its small siblings): multi-head attention
// with RoPE, a dense SiLU MLP in the first layers, then MoE layers with a softmax top-k
// router, fine-grained routed experts and fused shared experts. Binds and checks every
// weight against the config; runs on the CPU backend. Definition: model-spec.md §1.
#pragma once

#include <memory>

#include "engine/model.h"

namespace moe {

std::unique_ptr<Model> make_deepseek_moe(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                         const LoadOptions& opt);

}  // namespace moe
