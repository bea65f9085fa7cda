// The CUDA backend's model: the DeepSeekMoE forward pass (model_type "deepseek": DeepSeekMoE
// 16B and the embedded default) on one GPU. Weights stay as stored (BF16, F16 or F32) in one
// device allocation filled from the memory-mapped safetensors; the KV cache lives on the
// device (f32, as the CPU backend's); one stream; every routing decision reaches the
// observer as the CPU backend reports it, copied to the host once per forward step.
// Host code only in this header.
#pragma once

#include <memory>

#include "engine/model.h"

namespace moe::cuda {

// Makes load_model/make_model build CUDA models when LoadOptions::backend is Backend::cuda.
void register_backend();

// The model on device 0. Input errors: no device (the driver's reason), too little device
// memory (needed and free), an architecture or weight type the backend does not run.
std::unique_ptr<Model> make_cuda_model(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                       const LoadOptions& opt);

}  // namespace moe::cuda
