// What a model is, in numbers a researcher reads (`moewb info`, the GUI's model panel): from
// its config alone (a model too big for this machine), plus the checkpoint when loaded, plus
// the weight index's total size when only that is at hand. One function so both faces show
// the same numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/model_config.h"

namespace moe {

struct ModelInfo {
    std::string architecture;  // architecture_name(): "deepseek", "deepseek_v2", "deepseek_v3"
    std::string attention;     // "mha" or "mla"
    std::string router;        // router_description()
    std::vector<int64_t> moe_layers;
    int64_t total_params = 0, activated_params = 0;
    bool weights_present = false;
    std::string dtype;                 // of the loaded weights, else the config's torch_dtype (or "FP8")
    int64_t weight_bytes = 0;
    std::string weight_bytes_source;   // "checkpoint" | "index" | "estimate"
    int64_t kv_cache_values_per_token = 0;  // all layers
    int64_t kv_cache_bytes_per_token = 0;   // f32, as the engine keeps it
    int64_t mtp_layers = 0;                 // V3's multi-token-prediction layers (not run)
    int64_t mtp_tensors_skipped = 0;        // of them in the loaded checkpoint
    std::string backend = "cpu";
    int threads = 0;
};

// `model` may be null (config only); `dir` is the model directory (for the weight index), or "".
ModelInfo model_info(const ModelConfig& config, const Model* model, const std::string& dir);

// metadata.total_size of DIR/model.safetensors.index.json, or -1 (input error for bad JSON).
int64_t weight_index_total_size(const std::string& dir);

}  // namespace moe
