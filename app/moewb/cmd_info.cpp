// moewb info: what a model directory holds, from config.json and the checkpoint headers.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/model_info.h"

namespace moewb {

namespace {

// 15.6 M, 2.80 B; 31.2 MB, 32.8 GB: three significant digits in the unit that fits.
std::string scaled(double v, const char* unit) {
    const char* prefixes[] = {"", " k", " M", " G", " T"};
    const char* counts[] = {"", " k", " M", " B", " T"};  // parameters: billions as B
    int p = 0;
    while (v >= 1000.0 && p < 4) {
        v /= 1000.0;
        ++p;
    }
    char buf[48];
    const bool bytes = *unit != '\0';
    std::snprintf(buf, sizeof buf,
                  v < 10 && p    ? "%.2f%s%s"
                  : v < 100 && p ? "%.1f%s%s"
                                 : "%.0f%s%s",
                  v, bytes ? prefixes[p] : counts[p], bytes ? (p ? unit : " B") : "");
    return buf;
}

const char* kHelp =
    "usage: moewb info (--model DIR | --config config.json) [--json]\n\n"
    "Architecture, layer and expert counts, total and activated parameters, weight dtype\n"
    "and bytes of a Hugging Face model directory (config.json + safetensors). The weights\n"
    "are checked against the config (names, dtypes, shapes) without being read. A directory\n"
    "without weights, or --config alone, reports what the config describes.\n";

bool has_weights(const std::string& dir) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".safetensors") return true;
    return false;
}

}  // namespace

int cmd_info(int argc, char** argv) {
    Args args(argc, argv, {"--model", "--config", "--threads"}, {"--json"});
    if (args.help()) return print_help(kHelp);
    if (args.has("--model") == args.has("--config"))
        moe::throw_input_error("info", "give exactly one of --model DIR or --config config.json");
    const std::string source = args.get_or("--model", args.get_or("--config", ""));
    std::unique_ptr<moe::Model> model;
    moe::ModelConfig config_only;
    if (args.has("--model") && has_weights(source)) model = open_model(args);
    else config_only = moe::load_model_config(source);
    const moe::ModelConfig& c = model ? model->config() : config_only;
    const moe::ModelInfo info = moe::model_info(c, model.get(), args.has("--model") ? source : "");
    const std::vector<int64_t>& moe_layers = info.moe_layers;
    nlohmann::json j = {
        {"model", source},
        {"architecture", moe::architecture_name(c.arch)},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"layers", c.num_hidden_layers},
        {"dense_layers", c.num_hidden_layers - static_cast<int64_t>(moe_layers.size())},
        {"moe_layers", moe_layers},
        {"attention", info.attention},
        {"attention_heads", c.num_attention_heads},
        {"kv_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"n_routed_experts", c.n_routed_experts},
        {"n_shared_experts", c.n_shared_experts},
        {"n_expert_used", c.num_experts_per_tok},
        {"expert_ffn", c.moe_intermediate_size},
        {"dense_ffn", c.intermediate_size},
        {"router", info.router},
        {"scoring_func", moe::scoring_func_name(c.scoring_func)},
        {"topk_method", moe::topk_method_name(c.topk_method)},
        {"n_group", c.n_group},
        {"topk_group", c.topk_group},
        {"routed_scaling_factor", c.routed_scaling_factor},
        {"norm_topk_prob", c.norm_topk_prob},
        {"total_params", info.total_params},
        {"activated_params", info.activated_params},
        {"weights_present", info.weights_present},
        {"dtype", info.dtype},
        {"fp8", c.fp8},
        {"weight_bytes", info.weight_bytes},
        {"weight_bytes_source", info.weight_bytes_source},
        {"kv_cache_values_per_token", info.kv_cache_values_per_token},
        {"kv_cache_bytes_per_token", info.kv_cache_bytes_per_token},
        {"max_position_embeddings", c.max_position_embeddings},
    };
    if (c.is_mla()) {
        j["mla"] = {{"q_lora_rank", c.q_lora_rank ? nlohmann::json(c.q_lora_rank) : nlohmann::json(nullptr)},
                    {"kv_lora_rank", c.kv_lora_rank},
                    {"qk_nope_head_dim", c.qk_nope_head_dim},
                    {"qk_rope_head_dim", c.qk_rope_head_dim},
                    {"v_head_dim", c.v_head_dim},
                    {"softmax_scale", c.softmax_scale()}};
        j["rope_scaling"] = c.rope_scaling == moe::RopeScaling::yarn ? "yarn" : c.rope_scaling == moe::RopeScaling::linear ? "linear" : "none";
        j["mtp_layers"] = info.mtp_layers;
        j["mtp_tensors_skipped"] = info.mtp_tensors_skipped;
    }
    if (args.has("--json")) {
        print_json(j);
        return 0;
    }
    std::printf("model            %s\n", source.c_str());
    std::printf("architecture     %s\n", moe::architecture_name(c.arch));
    std::printf("layers           %lld (%lld dense, %zu MoE)\n", (long long)c.num_hidden_layers,
                (long long)(c.num_hidden_layers - (int64_t)moe_layers.size()), moe_layers.size());
    if (c.is_mla())
        std::printf("attention        MLA: hidden %lld, %lld heads, q %s, latent %lld + RoPE key %lld, "
                    "qk %lld+%lld, v %lld\n",
                    (long long)c.hidden_size, (long long)c.num_attention_heads,
                    c.q_lora_rank ? ("LoRA " + std::to_string(c.q_lora_rank)).c_str() : "full",
                    (long long)c.kv_lora_rank, (long long)c.qk_rope_head_dim, (long long)c.qk_nope_head_dim,
                    (long long)c.qk_rope_head_dim, (long long)c.v_head_dim);
    else
        std::printf("hidden           %lld, %lld heads (%lld kv) of %lld\n", (long long)c.hidden_size,
                    (long long)c.num_attention_heads, (long long)c.num_key_value_heads, (long long)c.head_dim);
    std::printf("experts          %lld routed (ffn %lld) + %lld shared\n", (long long)c.n_routed_experts,
                (long long)c.moe_intermediate_size, (long long)c.n_shared_experts);
    std::printf("router           %s\n", info.router.c_str());
    std::printf("kv cache         %lld values per token (%.1f KB per token in f32)\n",
                (long long)info.kv_cache_values_per_token, info.kv_cache_bytes_per_token / 1e3);
    if (c.num_nextn_predict_layers > 0)
        std::printf("mtp              %lld multi-token-prediction layer(s) after the last layer: not run%s\n",
                    (long long)c.num_nextn_predict_layers,
                    model ? (" (" + std::to_string(info.mtp_tensors_skipped) + " tensors skipped)").c_str() : "");
    std::printf("vocabulary       %lld\n", (long long)c.vocab_size);
    std::printf("parameters       %s total, %s activated per token\n", scaled(info.total_params, "").c_str(),
                scaled(info.activated_params, "").c_str());
    if (model)
        std::printf("weights          %s, %s\n", model->dtype_summary().c_str(),
                    scaled(static_cast<double>(model->tensors().weight_bytes()), "B").c_str());
    else
        std::printf(
            "weights          not present (%s: %s; this much memory to run it)\n",
            info.weight_bytes_source == "index" ? "weight index total_size" : (info.dtype + " per config").c_str(),
            scaled(static_cast<double>(info.weight_bytes), "B").c_str());
    return 0;
}

}  // namespace moewb
