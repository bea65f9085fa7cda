// libFuzzer target: arbitrary text as config.json. parse_model_config must throw a
// moe::Error of kind input or return a config that keeps its invariants; an accepted
// config then meets mask SPECs taken from the input (a "mask" string or array in the
// JSON, which the seeds carry) and built from the config's own boundary values, in both
// mask modes. ExpertMask::parse must reject (input error) or return a consistent mask.
// The same text as a saved mask file (--mask-file, the ablation panel's Save/Load) must be
// refused as input or give a SPEC and mode that survive being written and read again.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/expert_mask.h"
#include "engine/model_config.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using fuzz::input_error_or_ok;
using fuzz::require;

void check_config(const moe::ModelConfig& c) {
    require(c.vocab_size > 0 && c.hidden_size > 0 && c.num_hidden_layers > 0);
    require(c.num_attention_heads > 0 && c.num_key_value_heads > 0);
    if (c.is_mla())  // V2/V3: the query/key width is the two parts', the value width its own
        require(c.head_dim == c.qk_nope_head_dim + c.qk_rope_head_dim && c.kv_lora_rank > 0 && c.v_head_dim > 0 &&
                c.qk_rope_head_dim % 2 == 0);
    else
        require(c.head_dim * c.num_attention_heads == c.hidden_size && c.head_dim % 2 == 0);
    require(c.num_attention_heads % c.num_key_value_heads == 0);
    require(c.n_routed_experts >= 0 && c.n_shared_experts >= 0 && c.moe_layer_freq > 0);
    if (c.n_routed_experts > 0)
        require(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.n_routed_experts);
    require(c.rope_theta > 0 && c.rms_norm_eps > 0 && c.rope_scaling_factor >= 1.0);
}

void check_mask(const moe::ExpertMask& m, const moe::ModelConfig& c, moe::MaskMode mode) {
    const int64_t E = c.n_routed_experts;
    for (const auto& [layer, li] : m.layers()) {
        require(layer >= 0 && layer < c.num_hidden_layers && c.is_moe_layer(layer));
        require(static_cast<int64_t>(li.disabled.size()) == E);
        int64_t off = 0;
        for (uint8_t d : li.disabled) off += d;
        require(off == li.n_disabled);
        require(li.k >= 1 && li.k <= E && li.skip_top >= 0 && li.skip_top < E);
        require(E - li.skip_top - (mode == moe::MaskMode::reroute ? li.n_disabled : 0) >= li.k);
        require(m.layer(layer) == &li);
    }
}

// SPECs at and around the config's limits, plus those the input carries.
std::vector<std::string> mask_specs(const std::string& text, const moe::ModelConfig& c) {
    const std::string E = std::to_string(c.n_routed_experts), K = std::to_string(c.num_experts_per_tok);
    const std::string L = std::to_string(c.num_hidden_layers);
    const std::string last = std::to_string(c.num_hidden_layers - 1);
    const std::string keep = std::to_string(c.n_routed_experts - c.num_experts_per_tok);
    std::vector<std::string> specs = {
        "*:0",  "*:shared", "*:k=" + K, "*:k=0", "*:k=" + E, "*:skip-top=" + keep, "*:skip-top=" + E,
        "L" + last + ":0", "L" + L + ":0", "L0:" + E, "*:" + keep + ";*:k=" + K, "L" + last + ":k=1;*:skip-top=1",
    };
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_object() && j.contains("mask")) {
        const auto& m = j["mask"];
        if (m.is_string()) specs.push_back(m.get<std::string>());
        if (m.is_array())
            for (const auto& s : m)
                if (s.is_string() && specs.size() < 64) specs.push_back(s.get<std::string>());
    }
    return specs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    moe::SavedMask saved;
    if (input_error_or_ok([&] { saved = moe::parse_saved_mask(text, "fuzz/mask.json"); })) {
        const moe::SavedMask again = moe::parse_saved_mask(moe::saved_mask_json(saved.spec, saved.mode, "fuzz"), "again");
        require(again.spec == saved.spec && again.mode == saved.mode);
    }
    moe::ModelConfig config;
    if (!input_error_or_ok([&] { config = moe::parse_model_config(text, "fuzz/config.json"); })) return 0;
    check_config(config);
    // What `moewb info` prints for any accepted config.
    (void)config.n_moe_layers();
    (void)config.total_params();
    (void)config.activated_params();
    for (const std::string& spec : mask_specs(text, config)) {
        for (moe::MaskMode mode : {moe::MaskMode::reroute, moe::MaskMode::drop}) {
            moe::ExpertMask mask;
            if (input_error_or_ok([&] { mask = moe::ExpertMask::parse(spec, config, mode); }))
                check_mask(mask, config, mode);
        }
    }
    return 0;
}
