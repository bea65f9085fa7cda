// ModelSummary from the engine's accessors; see model_summary.h.
#include "ui/model_summary.h"

#include <cstdio>

#include "engine/model_info.h"

namespace moe::ui {

namespace {

ModelSummary summarize(const ModelConfig& c, const Model* model, const std::string& dir) {
    ModelSummary s;
    s.dir = dir;
    s.architecture = architecture_name(c.arch);
    s.model_type = c.model_type;
    const ModelInfo info = model_info(c, model, dir);
    s.layers = c.num_hidden_layers;
    s.moe_layers = info.moe_layers;
    s.router = info.router;
    s.attention = info.attention;
    s.kv_cache_bytes_per_token = info.kv_cache_bytes_per_token;
    s.n_routed_experts = c.n_routed_experts;
    s.n_shared_experts = c.n_shared_experts;
    s.n_expert_used = c.num_experts_per_tok;
    s.expert_ffn = c.moe_intermediate_size;
    s.dense_ffn = c.intermediate_size;
    s.hidden_size = c.hidden_size;
    s.vocab_size = c.vocab_size;
    s.total_params = info.total_params;
    s.activated_params = info.activated_params;
    s.dtype = info.dtype;
    s.weight_bytes = info.weight_bytes;
    s.threads = info.threads;
    if (model && model->backend() == Backend::cuda) {
        const Model::DeviceMemory m = model->device_memory();
        s.backend = "CUDA: " + m.device + ", " + std::to_string(m.weights >> 20) + " MiB of weights on the device";
    }
    s.weights_present = info.weights_present;
    return s;
}

}  // namespace

ModelSummary summarize_model(const Model& model, const std::string& dir) { return summarize(model.config(), &model, dir); }

ModelSummary summarize_config(const ModelConfig& config, const std::string& dir) { return summarize(config, nullptr, dir); }

namespace {
std::string scaled(double v, const char* const* units, int n_units, double step) {
    int u = 0;
    while (u + 1 < n_units && v >= step) {
        v /= step;
        ++u;
    }
    char buf[64];
    if (u == 0) std::snprintf(buf, sizeof buf, "%.0f%s%s", v, units[0][0] ? " " : "", units[0]);
    else std::snprintf(buf, sizeof buf, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
    return buf;
}
}  // namespace

std::string format_count(int64_t n) {
    static const char* const kUnits[] = {"", "k", "M", "B", "T"};
    return scaled(static_cast<double>(n), kUnits, 5, 1000.0);
}

std::string format_bytes(int64_t n) {
    static const char* const kUnits[] = {"bytes", "kB", "MB", "GB", "TB"};
    return scaled(static_cast<double>(n), kUnits, 5, 1000.0);
}

}  // namespace moe::ui
