// TokenRouting; see token_routing.h.
#include "ui/token_routing.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"

namespace moe::ui {

std::optional<float> TokenRouting::gate_weight(int64_t t, int64_t l, int64_t r) const {
    if (gate_weights.empty() || expert(t, l, r) < 0) return std::nullopt;
    return gate_weights[index(t, l, r)];
}

int64_t TokenRouting::rank_of(int64_t t, int64_t l, int64_t e) const {
    for (int64_t r = 0; r < k; ++r)
        if (expert(t, l, r) == e) return r;
    return -1;
}

int64_t TokenRouting::max_experts() const {
    int64_t m = 1;
    for (int64_t e : n_experts) m = std::max(m, e);
    for (int32_t e : experts) m = std::max<int64_t>(m, e + 1);
    return m;
}

int64_t TokenRouting::column_of_layer(int64_t layer) const {
    const auto it = std::find(layers.begin(), layers.end(), layer);
    return it == layers.end() ? -1 : static_cast<int64_t>(it - layers.begin());
}

namespace {

// 'token 7: "ory" (id 2493)', `between`, 'layer 2'.
std::string heading(const TokenRouting& r, int64_t t, int64_t l, const char* between) {
    const auto ut = static_cast<size_t>(t);
    return "token " + std::to_string(t) + ": \"" + display_token(r.token_texts[ut]) + "\" (id " +
           std::to_string(r.token_ids[ut]) + ")" + between + "layer " +
           std::to_string(r.layers[static_cast<size_t>(l)]);
}

}  // namespace

std::string TokenRouting::describe(int64_t t, int64_t l) const {
    if (t < 0 || t >= n_tokens() || l < 0 || l >= n_layers()) return {};
    std::string s = heading(*this, t, l, "\n");
    s += has_gate_weights() ? "\nrank  expert  gate weight" : "\nrank  expert  (no gate weights in this run)";
    for (int64_t r = 0; r < k; ++r) {
        const int32_t e = expert(t, l, r);
        if (e < 0) break;
        char line[64];
        if (const auto w = gate_weight(t, l, r))
            std::snprintf(line, sizeof line, "\n%4lld  %6d  %.4f", static_cast<long long>(r), e, static_cast<double>(*w));
        else
            std::snprintf(line, sizeof line, "\n%4lld  %6d", static_cast<long long>(r), e);
        s += line;
    }
    return s;
}

std::string TokenRouting::describe_line(int64_t t, int64_t l) const {
    if (t < 0 || t >= n_tokens() || l < 0 || l >= n_layers()) return {};
    std::string s = heading(*this, t, l, " · ") + " · experts by rank: ";
    for (int64_t r = 0; r < k; ++r) {
        const int32_t e = expert(t, l, r);
        if (e < 0) break;
        if (r) s += ", ";
        s += std::to_string(e);
        if (const auto w = gate_weight(t, l, r)) {
            char weight[32];
            std::snprintf(weight, sizeof weight, " (%.4f)", static_cast<double>(*w));
            s += weight;
        }
    }
    if (!has_gate_weights()) s += " (no gate weights in this run)";
    return s;
}

std::string display_token(const std::string& text) {
    if (text.empty()) return "∅";
    // A token of spaces alone would be an empty-looking row: each space shown as ␣.
    if (text.find_first_not_of(' ') == std::string::npos) {
        std::string out;
        for (size_t i = 0; i < text.size(); ++i) out += "␣";
        return out;
    }
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "⏎";
        else if (c == '\t') out += "⇥";
        else if (c == '\r') out += "␍";
        else out += c;
    }
    return out;
}

TokenRouting load_token_routing(analysis::RoutingStore& store, int64_t run_id, int64_t doc_id) {
    const analysis::RunInfo run = store.run(run_id);
    analysis::StoredDocument doc;
    if (!store.read_document(run_id, doc_id, {}, doc))
        throw_input_error("run " + std::to_string(run_id), "has no finished document " + std::to_string(doc_id));
    const std::vector<std::string> vocab = store.vocab(run.model_id);

    TokenRouting out;
    out.run_id = run_id;
    out.doc_id = doc_id;
    out.title = "run " + std::to_string(run_id) + " · " + doc.domain + " · " + doc.name + " (" +
                std::to_string(doc.token_ids.size()) + " tokens" + (doc.truncated ? ", cut by the budget)" : ")");
    out.token_ids = doc.token_ids;
    out.token_texts.reserve(doc.token_ids.size());
    for (int32_t id : doc.token_ids)
        out.token_texts.push_back(id >= 0 && static_cast<size_t>(id) < vocab.size() ? vocab[static_cast<size_t>(id)]
                                                                                   : std::string());
    for (const analysis::StoredLayer& l : doc.layers) {
        out.layers.push_back(l.layer);
        out.layer_k.push_back(l.k);
        const analysis::RunLayer* rl = run.layer(l.layer);
        out.n_experts.push_back(rl ? rl->n_expert : 0);
        out.k = std::max(out.k, l.k);
    }
    const int64_t T = out.n_tokens(), L = out.n_layers(), K = out.k;
    const bool weights = run.has_gate_weights() &&
                         std::all_of(doc.layers.begin(), doc.layers.end(), [](const auto& l) { return !l.gate_weights.empty(); });
    out.experts.assign(static_cast<size_t>(T * L * K), -1);
    if (weights) out.gate_weights.assign(static_cast<size_t>(T * L * K), 0.0f);
    for (int64_t li = 0; li < L; ++li) {
        const analysis::StoredLayer& l = doc.layers[static_cast<size_t>(li)];
        for (int64_t t = 0; t < T; ++t)
            for (int64_t r = 0; r < l.k; ++r) {
                const auto src = static_cast<size_t>(t * l.k + r);
                out.experts[out.index(t, li, r)] = l.experts[src];
                if (weights) out.gate_weights[out.index(t, li, r)] = l.gate_weights[src];
            }
    }
    return out;
}

TokenRouting token_routing_from_recorder(const RoutingRecorder& recorder, const std::vector<int32_t>& token_ids,
                                         const std::vector<std::string>& token_texts, const std::string& title) {
    TokenRouting out;
    out.title = title;
    out.token_ids = token_ids;
    out.token_texts = token_texts;
    out.token_texts.resize(token_ids.size());
    for (const auto& [layer, tokens] : recorder.layers()) {
        out.layers.push_back(layer);
        int64_t k = 0;
        for (const auto& tok : tokens) k = std::max<int64_t>(k, static_cast<int64_t>(tok.experts.size()));
        out.layer_k.push_back(k);
        out.n_experts.push_back(0);
        out.k = std::max(out.k, k);
    }
    const int64_t T = out.n_tokens(), L = out.n_layers(), K = out.k;
    out.experts.assign(static_cast<size_t>(T * L * K), -1);
    out.gate_weights.assign(static_cast<size_t>(T * L * K), 0.0f);
    int64_t li = 0;
    for (const auto& [layer, tokens] : recorder.layers()) {
        // Later records of a position (a prompt re-run) replace earlier ones.
        for (const auto& tok : tokens) {
            if (tok.pos < 0 || tok.pos >= T) continue;
            for (size_t r = 0; r < tok.experts.size(); ++r) {
                out.experts[out.index(tok.pos, li, static_cast<int64_t>(r))] = tok.experts[r];
                if (r < tok.gate_weights.size())
                    out.gate_weights[out.index(tok.pos, li, static_cast<int64_t>(r))] = tok.gate_weights[r];
            }
        }
        ++li;
    }
    return out;
}

}  // namespace moe::ui
