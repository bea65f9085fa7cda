// Model facts for display; see model_info.h.
#include "engine/model_info.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe {

namespace {

// Bytes of the weights a config describes: BF16/F16 (2 bytes per parameter), F32 (4), or FP8
// (1 byte per linear weight; embeddings, head and routers stay BF16).
int64_t estimated_weight_bytes(const ModelConfig& c) {
    if (c.fp8) {
        const int64_t dense = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) +
                              c.n_moe_layers() * c.n_routed_experts * c.hidden_size;
        return c.total_params() + dense;
    }
    return c.total_params() * (c.torch_dtype == "float32" ? 4 : 2);
}

}  // namespace

int64_t weight_index_total_size(const std::string& dir) {
    if (dir.empty()) return -1;
    const std::filesystem::path p = std::filesystem::path(dir) / "model.safetensors.index.json";
    std::ifstream in(p);
    if (!in) return -1;
    try {
        const nlohmann::json j = nlohmann::json::parse(in);
        if (j.contains("metadata") && j["metadata"].contains("total_size") && j["metadata"]["total_size"].is_number())
            return j["metadata"]["total_size"].get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
        throw_input_error(p.string(), std::string("not valid JSON: ") + e.what());
    }
    return -1;
}

ModelInfo model_info(const ModelConfig& c, const Model* model, const std::string& dir) {
    ModelInfo i;
    i.architecture = architecture_name(c.arch);
    i.attention = c.is_mla() ? "mla" : "mha";
    i.router = router_description(c);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
        if (c.is_moe_layer(l)) i.moe_layers.push_back(l);
    i.total_params = c.total_params();
    i.activated_params = c.activated_params();
    i.kv_cache_values_per_token = c.num_hidden_layers * c.kv_cache_values_per_layer();
    i.kv_cache_bytes_per_token = i.kv_cache_values_per_token * static_cast<int64_t>(sizeof(float));
    i.mtp_layers = c.num_nextn_predict_layers;
    if (model) {
        i.weights_present = true;
        i.dtype = model->dtype_summary();
        i.weight_bytes = static_cast<int64_t>(model->tensors().weight_bytes());
        i.weight_bytes_source = "checkpoint";
        i.threads = model->threads();
        const std::string prefix = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
        for (const std::string& name : model->tensors().names())
            i.mtp_tensors_skipped += name.compare(0, prefix.size(), prefix) == 0;
    } else {
        // The config's torch_dtype in the spelling of loaded weights' dtypes (BF16, F16, F32).
        const std::string& t = c.torch_dtype;
        i.dtype = c.fp8             ? "FP8 (e4m3, 128x128 block scales)"
                  : t == "bfloat16" ? "BF16"
                  : t == "float16"  ? "F16"
                  : t == "float32"  ? "F32"
                                    : t;
        const int64_t index = weight_index_total_size(dir);
        i.weight_bytes = index >= 0 ? index : estimated_weight_bytes(c);
        i.weight_bytes_source = index >= 0 ? "index" : "estimate";
    }
    return i;
}

}  // namespace moe
