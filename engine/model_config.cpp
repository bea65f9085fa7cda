// config.json parsing and validation; see model_config.h. Keys and their meaning:
// ../shared/model-spec.md §1 (the published DeepseekConfig).
#include "engine/model_config.h"

#include <cmath>
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
    }
    return "?";
}

int64_t ModelConfig::n_moe_layers() const {
    int64_t n = 0;
    for (int64_t i = 0; i < num_hidden_layers; ++i) n += is_moe_layer(i);
    return n;
}

// Parameter counts are summed in double: bounded configs stay far below 2^63, but a sum
// in floating point cannot overflow whatever a caller builds by hand.
int64_t ModelConfig::total_params() const {
    const double H = static_cast<double>(hidden_size), hd = static_cast<double>(head_dim);
    const double attn =
        H * static_cast<double>(num_attention_heads) * hd * 2 + H * static_cast<double>(num_key_value_heads) * hd * 2;
    double total = static_cast<double>(vocab_size) * H * (tie_word_embeddings ? 1 : 2) + H;
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
        total += attn + 2 * H;
        if (is_moe_layer(i))
            total += static_cast<double>(n_routed_experts) * H * (1 + 3 * static_cast<double>(moe_intermediate_size)) +
                     3 * H * static_cast<double>(shared_width());
        else
            total += 3 * H * static_cast<double>(intermediate_size);
    }
    return static_cast<int64_t>(total);
}

int64_t ModelConfig::activated_params() const {
    const double H = static_cast<double>(hidden_size), hd = static_cast<double>(head_dim);
    const double attn =
        H * static_cast<double>(num_attention_heads) * hd * 2 + H * static_cast<double>(num_key_value_heads) * hd * 2;
    double total = H /*one embedding row*/ + static_cast<double>(vocab_size) * H /*lm_head*/ + H;
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
        total += attn + 2 * H;
        if (is_moe_layer(i))
            total += static_cast<double>(n_routed_experts) * H +
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
        throw_input_error(source, std::string("not valid JSON (NaN and Infinity are not JSON): ") + e.what());
    }
    if (!j.is_object()) throw_input_error(source, "not a JSON object");
    Reader r(j, source);
    ModelConfig c;
    c.source = source;
    c.model_type = r.string_or("model_type", "");
    if (c.model_type == "deepseek") {
        c.arch = Architecture::deepseek_moe;
    } else if (c.model_type.empty()) {
        throw_input_error(source, "key 'model_type' is missing: not a Hugging Face model config");
    } else if (c.model_type == "deepseek_v2" || c.model_type == "deepseek_v3") {
        throw_input_error(source, "model_type '" + c.model_type +
                                      "' (MLA attention) is not supported by this engine version; supported: deepseek");
    } else {
        throw_input_error(source, "unsupported model_type '" + c.model_type + "' (supported: deepseek)");
    }

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

    if (c.hidden_size % c.num_attention_heads != 0)
        r.fail("hidden_size", "(" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
                                  std::to_string(c.num_attention_heads) + ")");
    c.head_dim = c.hidden_size / c.num_attention_heads;
    if (c.head_dim % 2 != 0) r.fail("hidden_size", "gives an odd head dimension; rotary embedding needs an even one");
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                          ") does not divide num_attention_heads (" +
                                          std::to_string(c.num_attention_heads) + ")");
    if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive, found " + std::to_string(c.rope_theta));
    if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive, found " + std::to_string(c.rms_norm_eps));

    if (c.n_routed_experts > 0) {
        c.moe_intermediate_size = r.positive_int("moe_intermediate_size", kMaxFfn);
        c.num_experts_per_tok = r.positive_int("num_experts_per_tok", kMaxExperts);
        if (c.num_experts_per_tok > c.n_routed_experts)
            r.fail("num_experts_per_tok", "(" + std::to_string(c.num_experts_per_tok) + ") exceeds n_routed_experts (" +
                                              std::to_string(c.n_routed_experts) + ")");
        std::string sf = r.string_or("scoring_func", "softmax");
        if (sf != "softmax")
            r.fail("scoring_func", "'" + sf + "' is not supported for model_type deepseek (supported: softmax)");
        std::string tm = r.string_or("topk_method", "greedy");
        if (tm != "greedy")
            r.fail("topk_method", "'" + tm + "' is not supported for model_type deepseek (supported: greedy)");
        if (r.has("routed_scaling_factor") && r.number_or("routed_scaling_factor", 1.0) != 1.0)
            r.fail("routed_scaling_factor", "other than 1.0 is not part of model_type deepseek");
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
        if (type == "linear")
            c.rope_scaling = RopeScaling::linear;
        else if (type == "dynamic")
            c.rope_scaling = RopeScaling::dynamic_ntk;
        else if (type.empty())
            r.fail("rope_scaling", "needs a 'type' (or 'rope_type') string");
        else
            r.fail("rope_scaling", "type '" + type + "' is not supported (supported: linear, dynamic)");
    }
    return c;
}

ModelConfig load_model_config(const std::string& path) {
    std::filesystem::path p(path);
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) p /= "config.json";
    std::ifstream in(p, std::ios::binary);
    if (!in) throw_input_error(p.string(), "cannot open (a model directory needs config.json)");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_model_config(ss.str(), p.string());
}

}  // namespace moe
