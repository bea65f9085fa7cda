// moewb info: what a model directory holds, from config.json and the checkpoint headers.
#include <cstdio>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/checkpoint.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb info --model DIR [--json]\n\n"
    "Architecture, layer and expert counts, total and activated parameters, weight dtype\n"
    "and bytes of a Hugging Face model directory (config.json + safetensors). The weights\n"
    "are checked against the config (names, dtypes, shapes) without being read.\n";

}  // namespace

int cmd_info(int argc, char** argv) {
    Args args(argc, argv, {"--model", "--threads"}, {"--json"});
    if (args.help()) return print_help(kHelp);
    auto model = open_model(args);
    const moe::ModelConfig& c = model->config();
    std::vector<int64_t> moe_layers;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        if (c.is_moe_layer(i)) moe_layers.push_back(i);
    nlohmann::json j = {
        {"model", args.require("--model")},
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
        {"dtype", model->dtype_summary()},
        {"weight_bytes", model->tensors().weight_bytes()},
        {"kv_cache_bytes_per_token", 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4},
        {"max_position_embeddings", c.max_position_embeddings},
    };
    if (args.has("--json")) {
        print_json(j);
        return 0;
    }
    std::printf("model            %s\n", args.require("--model").c_str());
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
    std::printf("weights          %s, %.1f MB\n", model->dtype_summary().c_str(),
                model->tensors().weight_bytes() / 1e6);
    return 0;
}

}  // namespace moewb
