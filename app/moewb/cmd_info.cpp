// moewb info: what a model directory holds, from config.json and the checkpoint headers.
#include <cstdio>
#include <filesystem>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/checkpoint.h"
#include "engine/error.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb info (--model DIR | --config config.json) [--json]\n\n"
    "Architecture, layer and expert counts, total and activated parameters, weight dtype\n"
    "and bytes of a Hugging Face model directory (config.json + safetensors). The weights\n"
    "are checked against the config (names, dtypes, shapes) without being read. A directory\n"
    "without weights, or --config alone, reports what the config describes.\n";

bool has_weights(const std::string& dir) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
            return true;
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
    std::vector<int64_t> moe_layers;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        if (c.is_moe_layer(i)) moe_layers.push_back(i);
    nlohmann::json j = {
        {"model", source},
        {"architecture", moe::architecture_name(c.arch)},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"layers", c.num_hidden_layers},
        {"dense_layers", c.num_hidden_layers - static_cast<int64_t>(moe_layers.size())},
        {"moe_layers", moe_layers},
        {"attention_heads", c.num_attention_heads},
        {"kv_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"n_routed_experts", c.n_routed_experts},
        {"n_shared_experts", c.n_shared_experts},
        {"n_expert_used", c.num_experts_per_tok},
        {"expert_ffn", c.moe_intermediate_size},
        {"dense_ffn", c.intermediate_size},
        {"router", "softmax top-k"},
        {"norm_topk_prob", c.norm_topk_prob},
        {"total_params", c.total_params()},
        {"activated_params", c.activated_params()},
        {"weights_present", model != nullptr},
        {"dtype", model ? model->dtype_summary() : c.torch_dtype},
        {"weight_bytes", model ? static_cast<int64_t>(model->tensors().weight_bytes())
                               : c.total_params() * (c.torch_dtype == "float32" ? 4 : 2)},
        {"kv_cache_bytes_per_token", 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4},
        {"max_position_embeddings", c.max_position_embeddings},
    };
    if (args.has("--json")) {
        print_json(j);
        return 0;
    }
    std::printf("model            %s\n", source.c_str());
    std::printf("architecture     %s (DeepSeekMoE)\n", moe::architecture_name(c.arch));
    std::printf("layers           %lld (%lld dense, %zu MoE)\n", (long long)c.num_hidden_layers,
                (long long)(c.num_hidden_layers - (int64_t)moe_layers.size()), moe_layers.size());
    std::printf("hidden           %lld, %lld heads (%lld kv) of %lld\n", (long long)c.hidden_size,
                (long long)c.num_attention_heads, (long long)c.num_key_value_heads, (long long)c.head_dim);
    std::printf("experts          %lld routed (ffn %lld) + %lld shared, top-%lld, %s\n",
                (long long)c.n_routed_experts, (long long)c.moe_intermediate_size, (long long)c.n_shared_experts,
                (long long)c.num_experts_per_tok, c.norm_topk_prob ? "renormalised" : "not renormalised");
    std::printf("vocabulary       %lld\n", (long long)c.vocab_size);
    std::printf("parameters       %.3f B total, %.3f B activated per token\n", c.total_params() / 1e9,
                c.activated_params() / 1e9);
    if (model)
        std::printf("weights          %s, %.1f MB\n", model->dtype_summary().c_str(),
                    model->tensors().weight_bytes() / 1e6);
    else
        std::printf("weights          not present (%s per config: %.1f GB)\n", c.torch_dtype.c_str(),
                    j["weight_bytes"].get<int64_t>() / 1e9);
    return 0;
}

}  // namespace moewb
