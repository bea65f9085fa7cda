// config.json parsing and validation; see model_config.h. Keys and their meaning:
// ../shared/model-spec.md §1 (the published DeepseekConfig) and model-spec-v2v3.md
// (DeepseekV2Config, DeepseekV3Config).
#include "engine/model_config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/error.h"

namespace moe {

namespace {

using nlohmann::json;

// Upper bounds far above every published model (DeepSeek-V3: vocab 129,280, hidden 7,168,
// 61 layers, 256 experts) that keep every size product inside 64-bit integers.
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxWidth = int64_t(1) << 17;
constexpr int64_t kMaxFfn = int64_t(1) << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxExperts = 65536;
constexpr int64_t kMaxPositions = int64_t(1) << 26;

class Reader {
public:
    Reader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

    int64_t positive_int(const char* key, int64_t max) const {
        if (!has(key)) fail(key, "is missing");
        return int_value(key, 1, max);
    }
    int64_t int_or(const char* key, int64_t fallback, int64_t min, int64_t max) const {
        if (!has(key)) return fallback;
        return int_value(key, min, max);
    }
    double number_or(const char* key, double fallback) const {
        if (!has(key)) return fallback;
        const json& v = j_[key];
        if (!v.is_number()) fail(key, "must be a number, found " + v.dump());
        double x = v.get<double>();
        if (!std::isfinite(x)) fail(key, "must be finite, found " + v.dump());
        return x;
    }
    bool bool_or(const char* key, bool fallback) const {
        if (!has(key)) return fallback;
        if (!j_[key].is_boolean()) fail(key, "must be true or false, found " + j_[key].dump());
        return j_[key].get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        if (!j_[key].is_string()) fail(key, "must be a string, found " + j_[key].dump());
        return j_[key].get<std::string>();
    }
    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw_input_error(source_, "key '" + key + "' " + what);
    }

private:
    int64_t int_value(const char* key, int64_t min, int64_t max) const {
        const json& v = j_[key];
        if (v.is_number_float()) {
            double d = v.get<double>();
            if (!std::isfinite(d) || d != std::floor(d)) fail(key, "must be an integer, found " + v.dump());
        } else if (!v.is_number()) {
            fail(key, "must be an integer, found " + v.dump());
        }
        double d = v.get<double>();
        if (d < static_cast<double>(min)) fail(key, "must be >= " + std::to_string(min) + ", found " + v.dump());
        if (d > static_cast<double>(max))
            fail(key, "is implausibly large: " + v.dump() + " (this engine accepts up to " + std::to_string(max) + ")");
        return static_cast<int64_t>(d);
    }

    const json& j_;
    std::string source_;
};

}  // namespace

const char* architecture_name(Architecture a) {
    switch (a) {
        case Architecture::deepseek_moe:
            return "deepseek";
        case Architecture::deepseek_v2:
            return "deepseek_v2";
        case Architecture::deepseek_v3:
            return "deepseek_v3";
    }
    return "?";
}

const char* topk_method_name(TopkMethod m) {
    switch (m) {
        case TopkMethod::greedy:
            return "greedy";
        case TopkMethod::group_limited_greedy:
            return "group_limited_greedy";
        case TopkMethod::noaux_tc:
            return "noaux_tc";
    }
    return "?";
}

const char* scoring_func_name(ScoringFunc s) {
    return s == ScoringFunc::softmax ? "softmax" : "sigmoid";
}

std::string router_description(const ModelConfig& c) {
    if (c.n_routed_experts == 0) return "none (dense)";
    char scale[32] = "";
    if (c.routed_scaling_factor != 1.0) std::snprintf(scale, sizeof scale, ", x%g", c.routed_scaling_factor);
    std::string s = c.scoring_func == ScoringFunc::softmax ? "softmax" : "sigmoid";
    if (c.topk_method == TopkMethod::noaux_tc) s += " + selection bias (noaux_tc)";
    if (c.topk_method == TopkMethod::group_limited_greedy) s += " (group_limited_greedy)";
    if (c.topk_method != TopkMethod::greedy && c.n_group > 1)
        s += ", " + std::to_string(c.topk_group) + " of " + std::to_string(c.n_group) + " groups by " +
             (c.topk_method == TopkMethod::noaux_tc ? "top-2 sum" : "best expert");
    s += ", top-" + std::to_string(c.num_experts_per_tok);
    s += c.norm_topk_prob && c.num_experts_per_tok > 1 ? ", renormalised" : ", not renormalised";
    return s + scale;
}

double yarn_mscale(double factor, double m) {
    return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

double ModelConfig::softmax_scale() const {
    double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
    if (rope_scaling == RopeScaling::yarn && yarn_mscale_all_dim != 0) {
        const double m = moe::yarn_mscale(rope_scaling_factor, yarn_mscale_all_dim);
        s *= m * m;
    }
    return s;
}

int64_t ModelConfig::kv_cache_values_per_layer() const {
    return is_mla() ? kv_lora_rank + qk_rope_head_dim : 2 * num_key_value_heads * head_dim;
}

int64_t ModelConfig::n_moe_layers() const {
    int64_t n = 0;
    for (int64_t i = 0; i < num_hidden_layers; ++i) n += is_moe_layer(i);
    return n;
}

// Parameter counts are summed in double: bounded configs stay far below 2^63, but a sum
// in floating point cannot overflow whatever a caller builds by hand.
namespace {

double attention_params(const ModelConfig& c) {
    const double H = static_cast<double>(c.hidden_size), nh = static_cast<double>(c.num_attention_heads);
    if (!c.is_mla()) {
        const double hd = static_cast<double>(c.head_dim);
        return H * nh * hd * 2 + H * static_cast<double>(c.num_key_value_heads) * hd * 2;
    }
    const double dq = static_cast<double>(c.qk_head_dim()), r = static_cast<double>(c.q_lora_rank),
                 kc = static_cast<double>(c.kv_lora_rank), dr = static_cast<double>(c.qk_rope_head_dim),
                 dn = static_cast<double>(c.qk_nope_head_dim), dv = static_cast<double>(c.v_head_dim);
    const double q = c.q_lora_rank ? H * r + r + r * nh * dq : H * nh * dq;
    return q + H * (kc + dr) + kc + kc * nh * (dn + dv) + nh * dv * H;
}

double router_params(const ModelConfig& c) {
    const double E = static_cast<double>(c.n_routed_experts);
    return E * static_cast<double>(c.hidden_size) + (c.topk_method == TopkMethod::noaux_tc ? E : 0);
}

}  // namespace

int64_t ModelConfig::total_params() const {
    const double H = static_cast<double>(hidden_size);
    const double attn = attention_params(*this);
    double total = static_cast<double>(vocab_size) * H * (tie_word_embeddings ? 1 : 2) + H;
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
        total += attn + 2 * H;
        if (is_moe_layer(i))
            total += router_params(*this) +
                     static_cast<double>(n_routed_experts) * 3 * H * static_cast<double>(moe_intermediate_size) +
                     3 * H * static_cast<double>(shared_width());
        else
            total += 3 * H * static_cast<double>(intermediate_size);
    }
    return static_cast<int64_t>(total);
}

int64_t ModelConfig::activated_params() const {
    const double H = static_cast<double>(hidden_size);
    const double attn = attention_params(*this);
    double total = H /*one embedding row*/ + static_cast<double>(vocab_size) * H /*lm_head*/ + H;
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
        total += attn + 2 * H;
        if (is_moe_layer(i))
            total += router_params(*this) +
                     static_cast<double>(num_experts_per_tok) * 3 * H * static_cast<double>(moe_intermediate_size) +
                     3 * H * static_cast<double>(shared_width());
        else
            total += 3 * H * static_cast<double>(intermediate_size);
    }
    return static_cast<int64_t>(total);
}

ModelConfig parse_model_config(const std::string& text, const std::string& source) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        // Python's json.dump writes NaN and Infinity; say so where the text has them.
        const bool non_finite = text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos;
        throw_input_error(source, std::string("not valid JSON") + (non_finite ? " (NaN and Infinity are not JSON)" : "") +
                                      ": " + e.what());
    }
    if (!j.is_object()) throw_input_error(source, "not a JSON object");
    Reader r(j, source);
    ModelConfig c;
    c.source = source;
    c.model_type = r.string_or("model_type", "");
    if (c.model_type == "deepseek") {
        c.arch = Architecture::deepseek_moe;
    } else if (c.model_type == "deepseek_v2") {
        c.arch = Architecture::deepseek_v2;
    } else if (c.model_type == "deepseek_v3") {
        c.arch = Architecture::deepseek_v3;
    } else if (c.model_type.empty()) {
        throw_input_error(source, "key 'model_type' is missing: not a Hugging Face model config");
    } else {
        throw_input_error(source, "unsupported model_type '" + c.model_type +
                                      "' (supported: deepseek, deepseek_v2, deepseek_v3)");
    }
    const bool mla = c.is_mla();

    c.vocab_size = r.positive_int("vocab_size", kMaxVocab);
    c.hidden_size = r.positive_int("hidden_size", kMaxWidth);
    c.intermediate_size = r.positive_int("intermediate_size", kMaxFfn);
    c.num_hidden_layers = r.positive_int("num_hidden_layers", kMaxLayers);
    c.num_attention_heads = r.positive_int("num_attention_heads", kMaxHeads);
    c.num_key_value_heads = r.int_or("num_key_value_heads", c.num_attention_heads, 1, kMaxHeads);
    c.n_routed_experts = r.int_or("n_routed_experts", 0, 1, kMaxExperts);
    c.n_shared_experts = r.int_or("n_shared_experts", 0, 0, kMaxExperts);
    c.first_k_dense_replace = r.int_or("first_k_dense_replace", 0, 0, kMaxLayers);
    c.moe_layer_freq = r.int_or("moe_layer_freq", 1, 1, kMaxLayers);
    c.norm_topk_prob = r.bool_or("norm_topk_prob", false);
    c.rope_theta = r.number_or("rope_theta", 10000.0);
    c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.max_position_embeddings = r.int_or("max_position_embeddings", 2048, 1, kMaxPositions);
    c.tie_word_embeddings = r.bool_or("tie_word_embeddings", false);
    c.torch_dtype = r.string_or("torch_dtype", "");
    if (r.has("bos_token_id")) c.bos_token_id = r.int_or("bos_token_id", 0, 0, kMaxVocab);
    if (r.has("eos_token_id")) {
        if (j["eos_token_id"].is_array()) r.fail("eos_token_id", "as a list is not supported");
        c.eos_token_id = r.int_or("eos_token_id", 0, 0, kMaxVocab);
    }

    if (!mla) {
        if (c.hidden_size % c.num_attention_heads != 0)
            r.fail("hidden_size", "(" + std::to_string(c.hidden_size) +
                                      ") is not a multiple of num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
        c.head_dim = c.hidden_size / c.num_attention_heads;
        if (c.head_dim % 2 != 0)
            r.fail("hidden_size", "gives an odd head dimension; rotary embedding needs an even one");
        if (c.num_attention_heads % c.num_key_value_heads != 0)
            r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                              ") does not divide num_attention_heads (" +
                                              std::to_string(c.num_attention_heads) + ")");
        for (const char* key : {"q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "n_group", "topk_group"})
            if (r.has(key)) r.fail(key, "belongs to deepseek_v2/deepseek_v3, not model_type deepseek");
    } else {
        // MLA: every head has its own no-RoPE key and value from the latent, and shares one
        // RoPE key; num_key_value_heads plays no part in the math.
        c.q_lora_rank = r.int_or("q_lora_rank", 0, 1, kMaxWidth);
        c.kv_lora_rank = r.positive_int("kv_lora_rank", kMaxWidth);
        c.qk_nope_head_dim = r.positive_int("qk_nope_head_dim", kMaxWidth);
        c.qk_rope_head_dim = r.positive_int("qk_rope_head_dim", kMaxWidth);
        c.v_head_dim = r.positive_int("v_head_dim", kMaxWidth);
        if (c.qk_rope_head_dim % 2 != 0)
            r.fail("qk_rope_head_dim", "must be even (rotary embedding rotates pairs), found " +
                                           std::to_string(c.qk_rope_head_dim));
        c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
        c.num_key_value_heads = c.num_attention_heads;
        c.num_nextn_predict_layers = r.int_or("num_nextn_predict_layers", 0, 0, kMaxLayers);
        if (r.has("quantization_config")) {
            const json& q = j["quantization_config"];
            auto qs = [&](const char* key) {
                return q.contains(key) && q[key].is_string() ? q[key].get<std::string>() : std::string();
            };
            if (!q.is_object() || qs("quant_method") != "fp8")
                r.fail("quantization_config", "is supported only as {\"quant_method\": \"fp8\", ...} (found " +
                                                  q.dump() + ")");
            if (q.contains("fmt") && qs("fmt") != "e4m3")
                r.fail("quantization_config", "fmt '" + qs("fmt") + "' is not supported (supported: e4m3)");
            if (!q.contains("weight_block_size") || q["weight_block_size"] != json::array({128, 128}))
                r.fail("quantization_config", "weight_block_size must be [128, 128] (found " +
                                                  (q.contains("weight_block_size") ? q["weight_block_size"].dump()
                                                                                    : std::string("none")) +
                                                  ")");
            // activation_scheme "dynamic" is how serving engines quantise activations on the
            // fly; the engine computes the dequantised model's math (weights q·s in f32).
            if (q.contains("activation_scheme") && qs("activation_scheme") != "dynamic")
                r.fail("quantization_config", "activation_scheme '" + qs("activation_scheme") +
                                                  "' is not supported (supported: dynamic)");
            c.fp8 = true;
        }
    }
    if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive, found " + std::to_string(c.rope_theta));
    if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive, found " + std::to_string(c.rms_norm_eps));

    if (c.n_routed_experts > 0) {
        c.moe_intermediate_size = r.positive_int("moe_intermediate_size", kMaxFfn);
        c.num_experts_per_tok = r.positive_int("num_experts_per_tok", kMaxExperts);
        if (c.num_experts_per_tok > c.n_routed_experts)
            r.fail("num_experts_per_tok", "(" + std::to_string(c.num_experts_per_tok) + ") exceeds n_routed_experts (" +
                                              std::to_string(c.n_routed_experts) + ")");
        const bool v3 = c.arch == Architecture::deepseek_v3;
        const std::string sf = r.string_or("scoring_func", v3 ? "sigmoid" : "softmax");
        const std::string tm = r.string_or("topk_method", v3 ? "noaux_tc" : "greedy");
        const std::string expect_sf = v3 ? "sigmoid" : "softmax";
        if (sf != expect_sf)
            r.fail("scoring_func", "'" + sf + "' is not supported for model_type " + c.model_type +
                                       " (supported: " + expect_sf + ")");
        c.scoring_func = v3 ? ScoringFunc::sigmoid : ScoringFunc::softmax;
        if (c.arch == Architecture::deepseek_moe) {
            if (tm != "greedy")
                r.fail("topk_method", "'" + tm + "' is not supported for model_type deepseek (supported: greedy)");
            if (r.has("routed_scaling_factor") && r.number_or("routed_scaling_factor", 1.0) != 1.0)
                r.fail("routed_scaling_factor", "other than 1.0 is not part of model_type deepseek");
        } else {
            // "gready" is how the published V2 remote code spells greedy.
            if (!v3 && (tm == "greedy" || tm == "gready"))
                c.topk_method = TopkMethod::greedy;
            else if (!v3 && tm == "group_limited_greedy")
                c.topk_method = TopkMethod::group_limited_greedy;
            else if (v3 && tm == "noaux_tc")
                c.topk_method = TopkMethod::noaux_tc;
            else
                r.fail("topk_method", "'" + tm + "' is not supported for model_type " + c.model_type +
                                          " (supported: " + (v3 ? "noaux_tc" : "greedy, group_limited_greedy") + ")");
            c.routed_scaling_factor = r.number_or("routed_scaling_factor", 1.0);
            if (!(c.routed_scaling_factor > 0))
                r.fail("routed_scaling_factor", "must be positive, found " + std::to_string(c.routed_scaling_factor));
            c.n_group = r.int_or("n_group", 1, 1, kMaxExperts);
            c.topk_group = r.int_or("topk_group", 1, 1, kMaxExperts);
            if (c.n_routed_experts % c.n_group != 0)
                r.fail("n_group", "(" + std::to_string(c.n_group) + ") does not divide n_routed_experts (" +
                                      std::to_string(c.n_routed_experts) + ")");
            if (c.topk_group > c.n_group)
                r.fail("topk_group", "(" + std::to_string(c.topk_group) + ") exceeds n_group (" +
                                         std::to_string(c.n_group) + ")");
            if (c.topk_method == TopkMethod::noaux_tc && c.n_routed_experts / c.n_group < 2)
                r.fail("n_group", "leaves groups of one expert; noaux_tc scores a group by its two best experts");
        }
    }

    if (r.bool_or("attention_bias", false))
        r.fail("attention_bias", "true is not supported (DeepSeekMoE has no biases)");
    std::string act = r.string_or("hidden_act", "silu");
    if (act != "silu") r.fail("hidden_act", "'" + act + "' is not supported (supported: silu)");

    if (r.has("rope_scaling")) {
        const json& rs = j["rope_scaling"];
        if (!rs.is_object()) r.fail("rope_scaling", "must be null or an object");
        std::string type;
        if (rs.contains("type") && rs["type"].is_string())
            type = rs["type"].get<std::string>();
        else if (rs.contains("rope_type") && rs["rope_type"].is_string())
            type = rs["rope_type"].get<std::string>();
        if (!rs.contains("factor") || !rs["factor"].is_number()) r.fail("rope_scaling", "needs a numeric 'factor'");
        c.rope_scaling_factor = rs["factor"].get<double>();
        if (!std::isfinite(c.rope_scaling_factor) || c.rope_scaling_factor < 1.0)
            r.fail("rope_scaling", "factor must be a finite number >= 1, found " + rs["factor"].dump());
        auto number = [&](const char* key, double fallback) {
            if (!rs.contains(key) || rs[key].is_null()) return fallback;
            if (!rs[key].is_number() || !std::isfinite(rs[key].get<double>()))
                r.fail("rope_scaling", std::string("'") + key + "' must be a finite number, found " + rs[key].dump());
            return rs[key].get<double>();
        };
        if (type == "linear") {
            c.rope_scaling = RopeScaling::linear;
        } else if (type == "dynamic" && !mla) {
            c.rope_scaling = RopeScaling::dynamic_ntk;
        } else if (type == "yarn" && mla) {
            c.rope_scaling = RopeScaling::yarn;
            const double orig = number("original_max_position_embeddings", -1);
            if (!(orig >= 1) || orig != std::floor(orig) || orig > static_cast<double>(kMaxPositions))
                r.fail("rope_scaling", "yarn needs an integer 'original_max_position_embeddings' >= 1");
            c.rope_original_max_position = static_cast<int64_t>(orig);
            c.yarn_beta_fast = number("beta_fast", 32);
            c.yarn_beta_slow = number("beta_slow", 1);
            c.yarn_mscale = number("mscale", 1);
            c.yarn_mscale_all_dim = number("mscale_all_dim", 0);
            if (!(c.yarn_beta_fast > 0 && c.yarn_beta_slow > 0))
                r.fail("rope_scaling", "yarn beta_fast and beta_slow must be positive");
        } else if (type.empty()) {
            r.fail("rope_scaling", "needs a 'type' (or 'rope_type') string");
        } else {
            r.fail("rope_scaling", "type '" + type + "' is not supported for model_type " + c.model_type +
                                       " (supported: " + (mla ? "linear, yarn" : "linear, dynamic") + ")");
        }
    }
    return c;
}

ModelConfig load_model_config(const std::string& path) {
    std::filesystem::path p(path);
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) p /= "config.json";
    if (!std::filesystem::exists(p, ec))
        throw_input_error(p.string(), p.filename() == "config.json"
                                          ? "no such file (a model directory needs config.json)"
                                          : "no such file");
    std::ifstream in(p, std::ios::binary);
    if (!in) throw_input_error(p.string(), "cannot open (a model directory needs config.json)");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_model_config(ss.str(), p.string());
}

}  // namespace moe
