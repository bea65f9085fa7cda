// MaskState; see mask_state.h.
#include "ui/mask_state.h"

#include "engine/error.h"

namespace moe::ui {

namespace {

std::string trim(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

std::string list(const std::vector<uint8_t>& off) {
    std::string s;
    for (size_t e = 0; e < off.size(); ++e)
        if (off[e]) s += (s.empty() ? "" : ",") + std::to_string(e);
    return s;
}

}  // namespace

MaskState::MaskState(const ModelConfig& config)
    : n_experts_(config.n_routed_experts), n_shared_(config.n_shared_experts) {
    for (int64_t l = 0; l < config.num_hidden_layers; ++l)
        if (config.is_moe_layer(l)) layers_.push_back(l);
    clear();
}

void MaskState::clear() {
    off_.assign(layers_.size(), std::vector<uint8_t>(static_cast<size_t>(n_experts_), 0));
    shared_off_.assign(layers_.size(), 0);
    extra_.clear();
}

void MaskState::set_expert_off(size_t row, int64_t expert, bool off) { off_[row][static_cast<size_t>(expert)] = off; }
void MaskState::set_shared_off(size_t row, bool off) { shared_off_[row] = off; }
void MaskState::set_all_shared_off(bool off) { shared_off_.assign(layers_.size(), off); }

int64_t MaskState::n_experts_off() const {
    int64_t n = 0;
    for (const auto& row : off_)
        for (uint8_t o : row) n += o;
    return n;
}

bool MaskState::any_shared_off() const {
    for (uint8_t o : shared_off_)
        if (o) return true;
    return false;
}

std::string MaskState::spec() const {
    std::vector<std::string> parts;
    bool same = !off_.empty();
    for (const auto& row : off_) same = same && row == off_.front();
    if (same && !list(off_.front()).empty()) {
        parts.push_back("*:" + list(off_.front()));
    } else if (!same) {
        for (size_t r = 0; r < layers_.size(); ++r)
            if (const std::string s = list(off_[r]); !s.empty()) parts.push_back("L" + std::to_string(layers_[r]) + ":" + s);
    }
    bool all_shared = !shared_off_.empty();
    for (uint8_t o : shared_off_) all_shared = all_shared && o;
    if (all_shared) {
        parts.push_back("*:shared");
    } else {
        for (size_t r = 0; r < layers_.size(); ++r)
            if (shared_off_[r]) parts.push_back("L" + std::to_string(layers_[r]) + ":shared");
    }
    for (const std::string& e : extra_) parts.push_back(e);
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : ";") + p;
    return out;
}

ExpertMask MaskState::to_mask(const ModelConfig& config) const { return ExpertMask::parse(spec(), config, mode_); }

MaskState MaskState::from_mask(const ExpertMask& mask, const ModelConfig& config) {
    MaskState s(config);
    s.mode_ = mask.mode();
    for (size_t r = 0; r < s.layers_.size(); ++r) {
        const LayerIntervention* li = mask.layer(s.layers_[r]);
        if (!li) continue;
        for (size_t e = 0; e < li->disabled.size() && e < s.off_[r].size(); ++e) s.off_[r][e] = li->disabled[e];
        s.shared_off_[r] = li->shared_off;
    }
    // Parts with a value (k=, skip-top=, skip-random=) are not grid cells: kept as written.
    std::string spec = mask.spec();
    for (size_t a = 0; a <= spec.size();) {
        size_t b = spec.find(';', a);
        if (b == std::string::npos) b = spec.size();
        const std::string part = trim(spec.substr(a, b - a));
        if (part.find('=') != std::string::npos) s.extra_.push_back(part);
        a = b + 1;
    }
    return s;
}

MaskState MaskState::from_spec(const std::string& spec, MaskMode mode, const ModelConfig& config) {
    return from_mask(ExpertMask::parse(spec, config, mode), config);
}

std::string MaskState::to_json(const std::string& model_name) const { return saved_mask_json(spec(), mode_, model_name); }

MaskState MaskState::from_json(const std::string& text, const ModelConfig& config, const std::string& where) {
    const SavedMask saved = parse_saved_mask(text, where);
    try {
        return from_spec(saved.spec, saved.mode, config);
    } catch (const Error& e) {
        rethrow_with_context(e, where);
    }
}

}  // namespace moe::ui
