// Tensor names of the DeepSeek checkpoint layouts (model_types "deepseek", "deepseek_v2",
// "deepseek_v3"), as data. Sources: model-spec.md §1 "Tensor names and shapes",
// model-spec-v2v3.md §1 (MLA) and §4 (FP8 scales, MTP layers).
#pragma once

#include <string>

namespace moe::deepseek_names {

inline const std::string embed = "model.embed_tokens.weight";
inline const std::string final_norm = "model.norm.weight";
inline const std::string lm_head = "lm_head.weight";

inline std::string layer(int64_t i) { return "model.layers." + std::to_string(i) + "."; }
inline std::string attn_norm(int64_t i) { return layer(i) + "input_layernorm.weight"; }
inline std::string ffn_norm(int64_t i) { return layer(i) + "post_attention_layernorm.weight"; }
inline std::string attn(int64_t i, const char* proj) { return layer(i) + "self_attn." + proj + ".weight"; }
inline std::string mlp(int64_t i, const char* proj) { return layer(i) + "mlp." + proj + ".weight"; }
inline std::string router(int64_t i) { return layer(i) + "mlp.gate.weight"; }
inline std::string router_bias(int64_t i) { return layer(i) + "mlp.gate.e_score_correction_bias"; }
inline std::string expert(int64_t i, int64_t e, const char* proj) {
    return layer(i) + "mlp.experts." + std::to_string(e) + "." + proj + ".weight";
}
inline std::string shared(int64_t i, const char* proj) { return layer(i) + "mlp.shared_experts." + proj + ".weight"; }

// Multi-token-prediction layers of V3 (stored as layers num_hidden_layers and up): the index
// of the layer a name belongs to, or -1.
inline int64_t layer_index(const std::string& name) {
    const std::string p = "model.layers.";
    if (name.compare(0, p.size(), p) != 0) return -1;
    size_t i = p.size();
    int64_t v = 0;
    if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && v < (int64_t(1) << 40)) v = v * 10 + (name[i++] - '0');
    return (i < name.size() && name[i] == '.') ? v : -1;
}

// Buffers some exporters store that carry no weights the model uses.
inline bool is_ignorable(const std::string& name) {
    const std::string suffix = "rotary_emb.inv_freq";
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace moe::deepseek_names
