// libFuzzer target: what an SGLang or vLLM server (or a saved responses file) hands
// `moewb capture` / `moewb import`. The first byte picks the parser and the model, the next
// two the prompt length and the raw dtype; the rest is the input: a whole response body
// (parse_engine_response), or bytes that reach the .npy reader (decode_npy_routing) or the raw
// integer reader (decode_raw_routing) after base64, so that their headers and shapes are
// fuzzed, not only the base64 alphabet. Every parser must throw a moe::Error of kind input or
// return a payload of rows × layers × k ids; an accepted payload then goes through the layer
// check and into a document's layers, which must hold exactly the checked ids.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/capture_decode.h"
#include "engine/error.h"
#include "engine/model_config.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using fuzz::input_error_or_ok;
using fuzz::require;

namespace an = moe::analysis;

// The embedded model's shape (one dense layer, then MoE layers of 64 experts, top-6) and one
// with every layer MoE and top-1, where a zero row is a valid route.
const char* const kConfigs[] = {
    R"({"model_type": "deepseek", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
        "num_hidden_layers": 4, "first_k_dense_replace": 1, "moe_layer_freq": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
        "norm_topk_prob": false, "scoring_func": "softmax", "vocab_size": 300, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 10000})",
    R"({"model_type": "deepseek", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
        "num_hidden_layers": 3, "first_k_dense_replace": 0, "moe_layer_freq": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "n_routed_experts": 8, "n_shared_experts": 0, "num_experts_per_tok": 1,
        "norm_topk_prob": true, "scoring_func": "softmax", "vocab_size": 300, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 10000})",
};

const moe::ModelConfig& config(int i) {
    static const moe::ModelConfig configs[] = {moe::parse_model_config(kConfigs[0], "fuzz config 0"),
                                               moe::parse_model_config(kConfigs[1], "fuzz config 1")};
    return configs[i];
}

void check_payload(const an::RoutingPayload& p) {
    require(p.rows >= 0 && p.layers >= 0 && p.k >= 0);
    require(static_cast<int64_t>(p.ids.size()) == p.rows * p.layers * p.k);
}

// The layer check and the append: on success every MoE layer gains rows × k ids, each an
// expert of the model; on an input error nothing is appended.
void append_checked(const an::RoutingPayload& p, const moe::ModelConfig& cfg, an::LayerAxis requested) {
    an::LayerAxis axis = an::LayerAxis::absolute;
    if (!input_error_or_ok([&] { axis = an::resolve_layer_axis(p, cfg, requested, "fuzz"); })) return;
    require(axis != an::LayerAxis::auto_detect);
    std::vector<moe::analysis::DocumentRouting::Layer> layers;
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
        if (cfg.is_moe_layer(l)) {
            moe::analysis::DocumentRouting::Layer layer;
            layer.layer = l;
            layer.k = cfg.num_experts_per_tok;
            layers.push_back(std::move(layer));
        }
    const bool ok = input_error_or_ok([&] { an::append_routing(p, cfg, axis, layers, "fuzz"); });
    for (const auto& layer : layers) {
        require(static_cast<int64_t>(layer.experts.size()) == (ok ? p.rows * layer.k : 0));
        for (int32_t e : layer.experts) require(e >= 0 && e < cfg.n_routed_experts);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    const int mode = data[0] % 3;
    const moe::ModelConfig& cfg = config((data[0] / 3) % 2);
    const int64_t n_prompt = data[1] % 40;
    static const char* const kDtypes[] = {"", "int32", "int64", "int16", "uint16", "uint8", "int8", "float32", "int"};
    const std::string dtype = kDtypes[data[2] % (sizeof kDtypes / sizeof kDtypes[0])];
    const std::string_view body(reinterpret_cast<const char*>(data + 3), size - 3);
    const an::LayerAxis requested = static_cast<an::LayerAxis>((data[1] / 40) % 3);

    an::RoutingPayload payload;
    bool ok = false;
    switch (mode) {
    case 0: {
        an::ParsedResponse r;
        const auto engine = (data[2] & 0x80) ? an::CaptureEngine::vllm : an::CaptureEngine::sglang;
        ok = input_error_or_ok([&] { r = an::parse_engine_response(engine, body, n_prompt, cfg, "fuzz"); });
        if (ok) {
            require(r.n_output >= 0);
            payload = std::move(r.routing);
        }
        input_error_or_ok([&] { (void)an::detect_engine(body); });
        break;
    }
    case 1:
        ok = input_error_or_ok([&] { payload = an::decode_npy_routing(an::base64_encode(body.data(), body.size()), "fuzz"); });
        break;
    default:
        ok = input_error_or_ok([&] {
            payload = an::decode_raw_routing(an::base64_encode(body.data(), body.size()), dtype, n_prompt, cfg, "fuzz");
        });
        break;
    }
    if (!ok) return 0;
    check_payload(payload);
    append_checked(payload, cfg, requested);
    return 0;
}
