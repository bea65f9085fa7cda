// Random weights of the true shapes of a config, in memory: for benchmarks of shapes
// whose checkpoints are not at hand, and for checkpoints that tests and demos write.
// Values are uniform with variance 1/fan_in (so activations stay O(1)); norms are about 1.
// With DType f8_e4m3 the linear weights are FP8 with 128x128 block scales (as DeepSeek-V3 is
// published) and embeddings, norms and routers BF16.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/checkpoint.h"
#include "engine/model_config.h"

namespace moe {

std::shared_ptr<MemoryTensors> make_random_tensors(const ModelConfig& config, DType dtype, uint64_t seed);

}  // namespace moe
