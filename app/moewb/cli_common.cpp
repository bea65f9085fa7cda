// Shared CLI helpers; see cli_common.h.
#include "app/moewb/cli_common.h"

#include <cstdio>
#include <iostream>

#include "engine/error.h"

namespace moewb {

std::set<std::string> model_value_flags() {
    return {"--model", "--threads", "--mask", "--mask-file", "--mask-mode", "--backend", "--activations"};
}

moe::LoadOptions load_options(const Args& args) {
    moe::LoadOptions opt;
    opt.threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    opt.backend = moe::parse_backend(args.get_or("--backend", "cpu"));
    const std::string activations = args.get_or("--activations", "exact");
    if (activations != "exact" && activations != "bf16")
        moe::throw_input_error("--activations", "'" + activations + "': expected exact or bf16");
    opt.cuda_bf16_activations = activations == "bf16";
    return opt;
}

std::unique_ptr<moe::Model> open_model(const Args& args) { return moe::load_model(args.require("--model"), load_options(args)); }

moe::ExpertMask mask_from_args(const Args& args, const moe::ModelConfig& config) {
    if (auto file = args.get("--mask-file")) {
        if (args.has("--mask")) moe::throw_input_error("--mask-file", "give --mask SPEC or --mask-file FILE, not both");
        const moe::SavedMask saved = moe::read_saved_mask(*file);
        const moe::MaskMode mode = args.has("--mask-mode") ? moe::parse_mask_mode(args.require("--mask-mode")) : saved.mode;
        try {
            return moe::ExpertMask::parse(saved.spec, config, mode);
        } catch (const moe::Error& e) {
            moe::rethrow_with_context(e, *file);
        }
    }
    const moe::MaskMode mode = moe::parse_mask_mode(args.get_or("--mask-mode", "reroute"));
    return moe::ExpertMask::parse(args.get_or("--mask", ""), config, mode);
}

int print_help(const char* text) {
    std::fputs(text, stdout);
    return 0;
}

void print_json(const nlohmann::json& j) {
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    std::cout.flush();
}

nlohmann::json run_json(const moe::analysis::RunInfo& r) {
    using nlohmann::json;
    json layers = json::array();
    for (const moe::analysis::RunLayer& l : r.layers) layers.push_back({{"layer", l.layer}, {"n_expert", l.n_expert}, {"k", l.k}});
    return {{"run_id", r.run_id},
            {"model", r.model_name},
            {"corpus", r.corpus_name},
            {"source", r.source},
            {"dtype", r.dtype},
            {"engine_version", r.engine_version},
            {"mask", r.mask_spec},
            {"mask_mode", r.mask_mode},
            {"gate_weight_kind", r.gate_weight_kind ? json(moe::gate_weight_kind_name(*r.gate_weight_kind)) : json(nullptr)},
            {"has_entropy", r.has_entropy},
            {"split", r.split},
            {"context", r.context},
            {"max_tokens", r.max_tokens},
            {"status", r.status},
            {"started", r.started},
            {"finished", r.finished.empty() ? json(nullptr) : json(r.finished)},
            {"documents", r.n_documents},
            {"tokens", r.n_tokens},
            {"layers", layers}};
}

nlohmann::json score_json(const moe::analysis::AblationScore& s) {
    return {{"domain", s.domain},
            {"tokens", s.tokens},
            {"baseline_loss", s.baseline_loss()},
            {"ablated_loss", s.ablated_loss()},
            {"delta_loss", s.delta_loss()},
            {"ppl_ratio", s.ppl_ratio()},
            {"kl", s.mean_kl()},
            {"top1_agreement", s.top1_agreement()}};
}

nlohmann::json stored_ablation_json(const moe::analysis::StoredAblation& x) {
    using nlohmann::json;
    json domains = json::array();
    for (const moe::analysis::AblationScore& s : x.domains) domains.push_back(score_json(s));
    return {{"ablation_id", x.ablation_id},
            {"baseline_id", x.baseline_id},
            {"model", x.model_name},
            {"corpus", x.corpus_name},
            {"split", x.split},
            {"max_tokens", x.max_tokens},
            {"context", x.context},
            {"source", x.source},
            {"dtype", x.dtype},
            {"step_tokens", x.step_tokens},
            {"created", x.created},
            {"sweep", x.sweep},
            {"value", x.value ? json(*x.value) : json(nullptr)},
            {"control", x.control},
            {"seed", x.seed ? json(*x.seed) : json(nullptr)},
            {"from_run", x.from_run ? json(*x.from_run) : json(nullptr)},
            {"mask", x.mask_spec},
            {"mode", x.mask_mode},
            {"domains", domains},
            {"all", score_json(x.all())}};
}

}  // namespace moewb
