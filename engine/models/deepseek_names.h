// Tensor names of the DeepSeekMoE checkpoint layout (model_type "deepseek"), as data.
// Source: model-spec.md §1 "Tensor names and shapes".
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
inline std::string expert(int64_t i, int64_t e, const char* proj) {
    return layer(i) + "mlp.experts." + std::to_string(e) + "." + proj + ".weight";
}
inline std::string shared(int64_t i, const char* proj) { return layer(i) + "mlp.shared_experts." + proj + ".weight"; }

// Buffers some exporters store that carry no weights the model uses.
inline bool is_ignorable(const std::string& name) {
    const std::string suffix = "rotary_emb.inv_freq";
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace moe::deepseek_names
