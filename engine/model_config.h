// ModelConfig: the facts of a model read from a Hugging Face config.json, validated.
// Holds every key that changes the math of the supported architectures; a value the
// engine cannot honour is refused with an error naming the key, never ignored.
// Architectures: "deepseek" (DeepSeekMoE), "deepseek_v2" (DeepSeek-V2, V2-Lite, Coder-V2:
// Multi-head Latent Attention, softmax routing, greedy or group-limited) and "deepseek_v3"
// (V3, R1: MLA, sigmoid scores with a selection bias, group-limited "noaux_tc"). Facts:
// ../shared/model-spec.md §1 and model-spec-v2v3.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moe {

enum class Architecture { deepseek_moe, deepseek_v2, deepseek_v3 };

enum class RopeScaling { none, linear, dynamic_ntk, yarn };
enum class ScoringFunc { softmax, sigmoid };
// greedy: top-k over all experts; group_limited_greedy (V2): only experts of the topk_group
// groups with the highest best-expert score; noaux_tc (V3): selection on score + bias, group
// score = sum of the group's two highest biased scores.
enum class TopkMethod { greedy, group_limited_greedy, noaux_tc };

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
    int64_t head_dim = 0;               // hd = H / nh (MLA: qk_nope_head_dim + qk_rope_head_dim)

    // Multi-head Latent Attention (deepseek_v2, deepseek_v3); all 0 for "deepseek".
    int64_t q_lora_rank = 0;       // 0: one q_proj; else q_a_proj -> q_a_layernorm -> q_b_proj
    int64_t kv_lora_rank = 0;      // c: the cached latent
    int64_t qk_nope_head_dim = 0;  // dn
    int64_t qk_rope_head_dim = 0;  // dr: RoPE'd slice, one key shared by all heads
    int64_t v_head_dim = 0;        // dv

    int64_t n_routed_experts = 0;     // E (0: no MoE layers)
    int64_t n_shared_experts = 0;     // S (0: none)
    int64_t num_experts_per_tok = 0;  // K
    int64_t first_k_dense_replace = 0;
    int64_t moe_layer_freq = 1;
    bool norm_topk_prob = false;
    ScoringFunc scoring_func = ScoringFunc::softmax;
    TopkMethod topk_method = TopkMethod::greedy;
    int64_t n_group = 1;     // expert groups (group-limited routing)
    int64_t topk_group = 1;  // groups a token may use
    double routed_scaling_factor = 1.0;
    int64_t num_nextn_predict_layers = 0;  // V3's multi-token-prediction layers (stored, not run)
    bool fp8 = false;  // quantization_config: FP8 e4m3 weights with 128x128 block scales

    double rope_theta = 10000.0;
    RopeScaling rope_scaling = RopeScaling::none;
    double rope_scaling_factor = 1.0;
    // YaRN (rope_scaling type "yarn"): original context and the ramp and magnitude parameters.
    int64_t rope_original_max_position = 0;
    double yarn_beta_fast = 32, yarn_beta_slow = 1, yarn_mscale = 1, yarn_mscale_all_dim = 0;
    int64_t max_position_embeddings = 0;
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;

    std::optional<int64_t> bos_token_id;
    std::optional<int64_t> eos_token_id;
    std::string torch_dtype;

    bool is_moe_layer(int64_t layer) const {
        return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
    }
    bool is_mla() const { return arch != Architecture::deepseek_moe; }
    int64_t n_moe_layers() const;
    int64_t qk_head_dim() const { return is_mla() ? qk_nope_head_dim + qk_rope_head_dim : head_dim; }
    // Attention's softmax scale: qk_head_dim^-1/2, times mscale² under YaRN with mscale_all_dim.
    double softmax_scale() const;
    // Values the KV cache holds per token and layer: MLA the latent plus the RoPE key
    // (kv_lora_rank + qk_rope_head_dim, 576 for the published models), else keys and values.
    int64_t kv_cache_values_per_layer() const;
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
const char* topk_method_name(TopkMethod m);
// The routing rule in words, e.g. "sigmoid + selection bias (noaux_tc), 4 of 8 groups by
// top-2 sum, top-8, renormalised, x2.5".
std::string router_description(const ModelConfig& c);
const char* scoring_func_name(ScoringFunc s);
// yarn_get_mscale of the published code: 1 when factor <= 1, else 0.1·m·ln(factor) + 1.
double yarn_mscale(double factor, double m);

}  // namespace moe
