// What the model panel shows about an opened model: engine/model_info.h's ModelInfo (the
// numbers `moewb info` prints) plus the config's counts. Presentation data only: nothing is computed here
// that the engine does not already compute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"

namespace moe::ui {

struct ModelSummary {
    std::string dir;
    std::string architecture;  // architecture_name(): "deepseek"
    std::string model_type;    // config.json model_type
    int64_t layers = 0;
    std::vector<int64_t> moe_layers;  // checkpoint layer indices
    int64_t n_routed_experts = 0, n_shared_experts = 0, n_expert_used = 0;
    int64_t expert_ffn = 0, dense_ffn = 0, hidden_size = 0, vocab_size = 0;
    int64_t total_params = 0, activated_params = 0;
    std::string dtype;
    int64_t weight_bytes = 0;
    int threads = 0;
    std::string backend = "CPU";
    std::string router;          // router_description()
    std::string attention;       // "mha" | "mla"
    int64_t kv_cache_bytes_per_token = 0;
    bool weights_present = true;
    bool has_tokenizer = false;
    std::string tokenizer_problem;  // why tracing text is not possible, when it is not
};

ModelSummary summarize_model(const Model& model, const std::string& dir);
// A directory with config.json (and the tokenizer) but no weights: weights_present false,
// weight bytes from the index or estimated (engine/model_info.h).
ModelSummary summarize_config(const ModelConfig& config, const std::string& dir);

// "16.4 B", "245.1 M", "12.3 k", "512"
std::string format_count(int64_t n);
// "31.2 GB", "12.0 MB"
std::string format_bytes(int64_t n);

}  // namespace moe::ui
