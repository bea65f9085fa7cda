// Run start and resume; see run_resume.h.
#include "analysis/run_resume.h"

#include "engine/error.h"

namespace moe::analysis {

RunResume RunResume::start(RoutingStore& store, const RunSpec& spec, bool new_run) {
    RunResume r;
    if (!new_run) {
        if (auto id = store.find_run(spec.model_id, spec.trace_key, "incomplete")) {
            r.run_id_ = *id;
            r.resumed_ = true;
        } else if (auto done = store.find_run(spec.model_id, spec.trace_key, "complete")) {
            r.run_id_ = *done;
            r.already_complete_ = true;
            return r;
        }
    }
    if (!r.run_id_) r.run_id_ = store.create_run(spec);
    for (const DocumentKey& k : store.finished_documents(r.run_id_)) r.finished_[{k.domain_id, k.split, k.name}] = k.text_hash;
    return r;
}

bool RunResume::finished(int64_t domain_id, const std::string& split, const std::string& name,
                         const std::string& text_hash, const std::string& file, const std::string& verb) const {
    const auto it = finished_.find({domain_id, split, name});
    if (it == finished_.end()) return false;
    if (it->second != text_hash)
        throw_input_error(file, "document '" + name + "' changed since run " + std::to_string(run_id_) + " " + verb +
                                    " it; run it as a new run (--new-run)");
    return true;
}

std::vector<RunLayer> run_layers(const ModelConfig& c, const ExpertMask* mask) {
    std::vector<RunLayer> out;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        if (!c.is_moe_layer(l)) continue;
        const LayerIntervention* iv = mask ? mask->layer(l) : nullptr;
        out.push_back({l, c.n_routed_experts, iv ? iv->k : c.num_experts_per_tok});
    }
    return out;
}

}  // namespace moe::analysis
