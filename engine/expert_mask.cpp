// SPEC parsing for ExpertMask. Grammar (parts joined with ';'):
//   L<layer>:<e>,<e>,...   routed experts of one MoE layer off      *:<e>,...  every MoE layer
//   L<layer>:shared        shared experts off                       *:shared
//   L<layer>:k=<n>         activated routed experts                 *:k=<n>
//   L<layer>:skip-top=<r>  per-token exclusion of the r most probable   *:skip-top=<r>
//   L<layer>:skip-random=<r>[@<seed>]  per-token exclusion of r random experts
#include "engine/expert_mask.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe {

namespace {

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

bool parse_int(const std::string& s, int64_t* out) {
    if (s.empty() || s.size() > 12) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    *out = std::strtoll(s.c_str(), nullptr, 10);
    return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t p = s.find(sep, start);
        out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) break;
        start = p + 1;
    }
    return out;
}

}  // namespace

MaskMode parse_mask_mode(const std::string& text) {
    if (text == "reroute") return MaskMode::reroute;
    if (text == "drop") return MaskMode::drop;
    throw_input_error("mask mode", "'" + text + "' is not one of reroute, drop");
}

const char* mask_mode_name(MaskMode m) { return m == MaskMode::reroute ? "reroute" : "drop"; }

ExpertMask ExpertMask::parse(const std::string& spec, const ModelConfig& cfg, MaskMode mode) {
    ExpertMask m;
    m.mode_ = mode;
    m.spec_ = spec;
    const int64_t E = cfg.n_routed_experts;
    auto fresh = [&]() {
        LayerIntervention li;
        li.disabled.assign(static_cast<size_t>(E), 0);
        li.k = cfg.num_experts_per_tok;
        return li;
    };
    // Parts for every layer (*) apply first, then parts naming one layer, so a layer's
    // own k or skip-top overrides the general one; among equals the later part wins.
    std::vector<std::string> parts;
    for (const std::string& raw : split(spec, ';'))
        if (!trim(raw).empty() && trim(raw)[0] == '*') parts.push_back(trim(raw));
    for (const std::string& raw : split(spec, ';'))
        if (!trim(raw).empty() && trim(raw)[0] != '*') parts.push_back(trim(raw));
    for (const std::string& part : parts) {
        const std::string where = "mask part '" + part + "'";
        size_t colon = part.find(':');
        if (colon == std::string::npos) throw_input_error(where, "expected L<layer>:... or *:...");
        const std::string target = part.substr(0, colon);
        const std::string body = trim(part.substr(colon + 1));
        std::vector<int64_t> layers;
        if (target == "*") {
            for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
                if (cfg.is_moe_layer(l)) layers.push_back(l);
            if (layers.empty()) throw_input_error(where, "the model has no MoE layers");
        } else {
            int64_t l = 0;
            if (target.size() < 2 || (target[0] != 'L' && target[0] != 'l') || !parse_int(target.substr(1), &l))
                throw_input_error(where, "layer must be written L<number> or *");
            if (l >= cfg.num_hidden_layers)
                throw_input_error(where, "layer " + std::to_string(l) + " does not exist (the model has " +
                                             std::to_string(cfg.num_hidden_layers) + " layers)");
            if (!cfg.is_moe_layer(l)) throw_input_error(where, "layer " + std::to_string(l) + " is a dense layer, not MoE");
            layers.push_back(l);
        }
        for (int64_t l : layers) {
            auto it = m.layers_.find(l);
            if (it == m.layers_.end()) it = m.layers_.emplace(l, fresh()).first;
            LayerIntervention& li = it->second;
            int64_t v = 0;
            if (body == "shared") {
                if (cfg.n_shared_experts == 0) throw_input_error(where, "the model has no shared experts");
                li.shared_off = true;
            } else if (body.rfind("k=", 0) == 0) {
                if (!parse_int(body.substr(2), &v) || v < 1 || v > E)
                    throw_input_error(where, "k must be an integer from 1 to " + std::to_string(E));
                li.k = v;
            } else if (body.rfind("skip-top=", 0) == 0) {
                if (!parse_int(body.substr(9), &v) || v >= E)
                    throw_input_error(where, "skip-top must be an integer from 0 to " + std::to_string(E - 1));
                li.skip_top = v;
            } else if (body.rfind("skip-random=", 0) == 0) {
                const std::string value = body.substr(12);
                const size_t at = value.find('@');
                int64_t seed = 0;
                if (!parse_int(value.substr(0, at), &v) || v >= E ||
                    (at != std::string::npos && !parse_int(value.substr(at + 1), &seed)))
                    throw_input_error(where, "expected skip-random=<r> or skip-random=<r>@<seed> with r from 0 to " +
                                                 std::to_string(E - 1) + " and a non-negative integer seed");
                li.skip_random = v;
                li.random_seed = static_cast<uint64_t>(seed);
            } else {
                if (body.empty()) throw_input_error(where, "no experts listed");
                for (const std::string& item : split(body, ',')) {
                    const std::string t = trim(item);
                    if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos && t.size() > 12)
                        throw_input_error(where, "expert " + t + " does not exist (the model has " + std::to_string(E) +
                                                     " routed experts)");
                    if (!parse_int(t, &v))
                        throw_input_error(where, "'" + t + "' is not an expert number, 'shared', 'k=<n>', 'skip-top=<r>' or 'skip-random=<r>'");
                    if (v >= E)
                        throw_input_error(where, "expert " + t + " does not exist (the model has " + std::to_string(E) +
                                                     " routed experts, 0.." + std::to_string(E - 1) + ")");
                    if (!li.disabled[static_cast<size_t>(v)]) {
                        li.disabled[static_cast<size_t>(v)] = 1;
                        ++li.n_disabled;
                    }
                }
            }
        }
    }
    for (const auto& [l, li] : m.layers_) {
        int64_t eligible = E - li.skip_top - li.skip_random - (mode == MaskMode::reroute ? li.n_disabled : 0);
        if (eligible < li.k)
            throw_input_error("mask '" + spec + "'",
                              "layer " + std::to_string(l) + " keeps " + std::to_string(eligible) +
                                  " selectable routed experts, fewer than k = " + std::to_string(li.k));
    }
    return m;
}

const LayerIntervention* ExpertMask::layer(int64_t l) const {
    auto it = layers_.find(l);
    return it == layers_.end() ? nullptr : &it->second;
}

std::string saved_mask_json(const std::string& spec, MaskMode mode, const std::string& model_name) {
    const nlohmann::json j = {{"format", "moe-workbench-mask"}, {"version", 1}, {"spec", spec},
                              {"mode", mask_mode_name(mode)}, {"model", model_name}};
    return j.dump(2) + "\n";
}

SavedMask parse_saved_mask(const std::string& text, const std::string& where) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) throw_input_error(where, "is not JSON: a saved mask is a JSON object");
    if (j.is_object() && j.contains("format") && j["format"] != "moe-workbench-mask")
        throw_input_error(
            where, "is not a saved mask: its \"format\" is " + j["format"].dump() + ", not \"moe-workbench-mask\"");
    if (!j.is_object() || !j.contains("spec") || !j["spec"].is_string())
        throw_input_error(where, "is not a saved mask: expected an object with a \"spec\" string");
    SavedMask m;
    m.spec = j["spec"].get<std::string>();
    if (j.contains("mode")) {
        if (!j["mode"].is_string()) throw_input_error(where, "\"mode\" is not a string");
        try {
            m.mode = parse_mask_mode(j["mode"].get<std::string>());
        } catch (const Error& e) {
            rethrow_with_context(e, where);
        }
    }
    return m;
}

SavedMask read_saved_mask(const std::string& path) {
    if (std::filesystem::is_directory(path)) throw_input_error(path, "is a directory, not a mask file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_input_error(path, "cannot open the mask file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw_input_error(path, "cannot read the mask file");
    return parse_saved_mask(text.str(), path);
}

}  // namespace moe
