// ModelConfig: the facts of a model read from a Hugging Face config.json, validated.
// Holds every key that changes the math of the supported architectures; a value the
// engine cannot honour is refused with an error naming the key, never ignored.
// Architectures: "deepseek" (DeepSeekMoE). The routing and attention fields are kept
// general so the MLA / group-limited / sigmoid-routed generations fit in beside it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moe {

enum class Architecture { deepseek_moe };

enum class RopeScaling { none, linear, dynamic_ntk };
enum class ScoringFunc { softmax };

struct ModelConfig {
    std::string source;        // path of config.json (for messages)
    std::string model_type;    // as written in config.json
    Architecture arch = Architecture::deepseek_moe;

    int64_t vocab_size = 0;             // V
    int64_t hidden_size = 0;            // H
    int64_t intermediate_size = 0;      // I: dense FFN width
    int64_t moe_intermediate_size = 0;  // F: width of one expert
    int64_t num_hidden_layers = 0;      // L
    int64_t num_attention_heads = 0;    // nh
    int64_t num_key_value_heads = 0;    // nkv (GQA when < nh)
    int64_t head_dim = 0;               // hd = H / nh

    int64_t n_routed_experts = 0;     // E (0: no MoE layers)
    int64_t n_shared_experts = 0;     // S (0: none)
    int64_t num_experts_per_tok = 0;  // K
    int64_t first_k_dense_replace = 0;
    int64_t moe_layer_freq = 1;
    bool norm_topk_prob = false;
    ScoringFunc scoring_func = ScoringFunc::softmax;

    double rope_theta = 10000.0;
    RopeScaling rope_scaling = RopeScaling::none;
    double rope_scaling_factor = 1.0;
    int64_t max_position_embeddings = 0;
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;

    std::optional<int64_t> bos_token_id;
    std::optional<int64_t> eos_token_id;
    std::string torch_dtype;

    bool is_moe_layer(int64_t layer) const {
        return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
    }
    int64_t n_moe_layers() const;
    int64_t shared_width() const { return moe_intermediate_size * n_shared_experts; }  // F·S

    // Parameter counts (weights only): all of them, and those used for one token.
    int64_t total_params() const;
    int64_t activated_params() const;  // counts one embedding row, not the whole table
};

// Reads and validates DIR/config.json (or the file itself when `path` is a file).
ModelConfig load_model_config(const std::string& path);
// Parses config JSON text; `source` names it in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);

const char* architecture_name(Architecture a);

}  // namespace moe
