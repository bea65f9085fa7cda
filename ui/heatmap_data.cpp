// HeatmapGrid from analysis/expert_stats; see heatmap_data.h.
#include "ui/heatmap_data.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "analysis/expert_stats.h"
#include "engine/error.h"

namespace moe::ui {

namespace an = moe::analysis;

const char* measure_name(HeatmapMeasure m) {
    switch (m) {
        case HeatmapMeasure::share: return "share";
        case HeatmapMeasure::ratio_to_uniform: return "ratio to uniform";
        case HeatmapMeasure::log_ratio: return "domain-vs-rest log-ratio";
        case HeatmapMeasure::mean_gate_weight: return "mean gate weight";
    }
    return "?";
}

bool measure_is_diverging(HeatmapMeasure m) { return m == HeatmapMeasure::log_ratio; }

static void value_range(const HeatmapGrid& g, double& lo, double& hi) {
    for (const HeatmapCell& c : g.cells)
        if (c.present && std::isfinite(c.value)) {
            lo = std::min(lo, c.value);
            hi = std::max(hi, c.value);
        }
    for (const HeatmapGrid& b : g.beside) value_range(b, lo, hi);
}

double HeatmapGrid::min_value() const {
    double lo = INFINITY, hi = -INFINITY;
    value_range(*this, lo, hi);
    return std::isfinite(lo) ? lo : 0.0;
}

double HeatmapGrid::max_value() const {
    double lo = INFINITY, hi = -INFINITY;
    value_range(*this, lo, hi);
    return std::isfinite(hi) ? hi : 0.0;
}

std::string HeatmapGrid::describe(int64_t row, int64_t col) const {
    if (row < 0 || row >= n_rows || col < 0 || col >= n_cols) return {};
    const HeatmapCell& c = at(row, col);
    if (!c.present) return {};
    char buf[512];
    std::string s = "domain " + row_domains[static_cast<size_t>(row)] + " · layer " +
                    std::to_string(row_layers[static_cast<size_t>(row)]) + " · expert " + std::to_string(col) + "\n";
    std::snprintf(buf, sizeof buf, "share %.6g  (%lld of %lld × %lld selections)\nratio to uniform %.4g\n", c.share,
                  static_cast<long long>(c.count), static_cast<long long>(c.tokens), static_cast<long long>(c.k),
                  c.ratio_to_uniform);
    s += buf;
    if (c.mean_gate_weight) {
        std::snprintf(buf, sizeof buf, "mean gate weight %.6g\n", *c.mean_gate_weight);
        s += buf;
    } else if (request.measure == HeatmapMeasure::mean_gate_weight) {
        s += "mean gate weight: not selected\n";
    }
    if (c.rest_share) {
        std::snprintf(buf, sizeof buf, "log-ratio %+.4g  (share in the other domains %.6g)\n",
                      c.minus_value ? c.value + *c.minus_value : c.value, *c.rest_share);
        s += buf;
    }
    if (c.minus_value) {
        std::snprintf(buf, sizeof buf, "%s: %+.6g  (this run %.6g, run %lld %.6g)\n", measure_name(request.measure),
                      c.value, c.value + *c.minus_value, static_cast<long long>(request.minus_run_id.value_or(0)),
                      *c.minus_value);
        s += buf;
    }
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

static HeatmapGrid load_single(an::RoutingStore& store, const HeatmapRequest& request);

// The other run's grid for the domain and layer `g` resolved; refused when it has none of them.
static HeatmapGrid load_other(an::RoutingStore& store, const HeatmapGrid& g, int64_t other_run) {
    HeatmapRequest other = g.request;
    other.run_id = other_run;
    other.minus_run_id.reset();
    other.beside_run_id.reset();
    HeatmapGrid b = load_single(store, other);
    if (std::find(b.domains.begin(), b.domains.end(), g.request.axes == HeatmapAxes::experts_by_layers
                                                          ? g.request.domain
                                                          : b.domains.front()) == b.domains.end() ||
        (g.request.layer && std::find(b.layers.begin(), b.layers.end(), *g.request.layer) == b.layers.end()))
        throw_input_error("run " + std::to_string(other_run), "has no tokens of this domain or layer to compare with");
    return b;
}

HeatmapGrid load_heatmap(an::RoutingStore& store, const HeatmapRequest& request) {
    if (request.minus_run_id && request.beside_run_id)
        throw_input_error("heatmap request", "either a run to subtract or a run to show beside, not both");
    if (request.beside_run_id) {
        HeatmapRequest own = request;
        own.beside_run_id.reset();
        HeatmapGrid g = load_single(store, own);
        g.beside.push_back(load_other(store, g, *request.beside_run_id));
        g.request.beside_run_id = request.beside_run_id;
        return g;
    }
    if (!request.minus_run_id) return load_single(store, request);
    // The difference of two runs: the first run's grid resolves domain and layer; the other's
    // cells are matched by domain, layer and expert.
    HeatmapRequest own = request;
    own.minus_run_id.reset();
    HeatmapGrid g = load_single(store, own);
    const HeatmapGrid b = load_other(store, g, *request.minus_run_id);
    for (int64_t r = 0; r < g.n_rows; ++r) {
        int64_t rb = -1;
        for (int64_t i = 0; i < b.n_rows; ++i)
            if (b.row_domains[static_cast<size_t>(i)] == g.row_domains[static_cast<size_t>(r)] &&
                b.row_layers[static_cast<size_t>(i)] == g.row_layers[static_cast<size_t>(r)])
                rb = i;
        for (int64_t e = 0; e < g.n_cols; ++e) {
            HeatmapCell& c = g.cells[static_cast<size_t>(r * g.n_cols + e)];
            if (rb < 0 || e >= b.n_cols || !b.at(rb, e).present || !c.present) {
                c.present = false;
                continue;
            }
            c.minus_value = b.at(rb, e).value;
            c.value = c.value - *c.minus_value;
        }
    }
    g.request.minus_run_id = request.minus_run_id;
    g.run_label += "  −  run " + std::to_string(*request.minus_run_id);
    g.diverging = true;
    return g;
}

static HeatmapGrid load_single(an::RoutingStore& store, const HeatmapRequest& request) {
    const an::RunInfo run = store.run(request.run_id);
    HeatmapGrid g;
    g.request = request;
    g.diverging = measure_is_diverging(request.measure);
    g.run_label = "run " + std::to_string(run.run_id) + " · " + run.model_name + " · " + run.corpus_name +
                  (run.split.empty() ? "" : " (" + run.split + ")") + (run.mask_spec.empty() ? "" : " · mask " + run.mask_spec);
    std::map<std::string, int64_t> domain_ids;
    for (const an::DomainTotal& t : store.domain_totals(run.run_id))
        if (domain_ids.emplace(t.domain, t.domain_id).second) g.domains.push_back(t.domain);
    std::sort(g.domains.begin(), g.domains.end());
    for (const an::RunLayer& l : run.layers) {
        g.layers.push_back(l.layer);
        g.n_cols = std::max(g.n_cols, l.n_expert);
    }
    if (g.domains.empty() || g.layers.empty())
        throw_input_error("run " + std::to_string(run.run_id), "has no traced tokens yet");
    if (request.measure == HeatmapMeasure::mean_gate_weight) an::require_gate_weights(run, "mean gate weight");

    const bool by_layers = request.axes == HeatmapAxes::experts_by_layers;
    if (by_layers) {
        if (g.request.domain.empty() || !domain_ids.count(g.request.domain)) g.request.domain = g.domains.front();
        for (int64_t l : g.layers) {
            g.row_labels.push_back("layer " + std::to_string(l));
            g.row_layers.push_back(l);
            g.row_domains.push_back(g.request.domain);
        }
    } else {
        if (!g.request.layer || std::find(g.layers.begin(), g.layers.end(), *g.request.layer) == g.layers.end())
            g.request.layer = g.layers.front();
        for (const std::string& d : g.domains) {
            g.row_labels.push_back(d);
            g.row_layers.push_back(*g.request.layer);
            g.row_domains.push_back(d);
        }
    }
    g.n_rows = static_cast<int64_t>(g.row_labels.size());
    g.cells.assign(static_cast<size_t>(g.n_rows * g.n_cols), HeatmapCell{});
    auto row_of = [&](const std::string& domain, int64_t layer) -> int64_t {
        for (int64_t r = 0; r < g.n_rows; ++r)
            if (g.row_domains[static_cast<size_t>(r)] == domain && g.row_layers[static_cast<size_t>(r)] == layer) return r;
        return -1;
    };

    // The cell of a statistics row; null when the grid has no such row or expert.
    auto cell_of = [&](const std::string& domain, int64_t layer, int64_t expert) -> HeatmapCell* {
        const int64_t r = row_of(domain, layer);
        if (r < 0 || expert < 0 || expert >= g.n_cols) return nullptr;
        return &g.cells[static_cast<size_t>(r * g.n_cols + expert)];
    };
    const std::optional<int64_t> layer_filter = by_layers ? std::nullopt : g.request.layer;
    const std::optional<int64_t> domain_filter =
        by_layers ? std::optional<int64_t>(domain_ids.at(g.request.domain)) : std::nullopt;
    for (const an::ExpertShare& s : an::expert_shares(store, run.run_id, layer_filter, domain_filter)) {
        HeatmapCell* cell = cell_of(s.domain, s.layer, s.expert);
        if (!cell) continue;
        HeatmapCell& c = *cell;
        c.present = true;
        c.count = s.count;
        c.tokens = s.tokens;
        c.k = s.k;
        c.share = s.share;
        c.ratio_to_uniform = s.ratio_to_uniform;
        c.mean_gate_weight = s.mean_gate_weight;
        switch (request.measure) {
            case HeatmapMeasure::share: c.value = s.share; break;
            case HeatmapMeasure::ratio_to_uniform: c.value = s.ratio_to_uniform; break;
            case HeatmapMeasure::mean_gate_weight: c.value = s.mean_gate_weight.value_or(NAN); break;
            case HeatmapMeasure::log_ratio: break;
        }
    }
    if (request.measure == HeatmapMeasure::log_ratio) {
        for (const an::DomainLogRatio& lr : an::domain_log_ratios(store, run.run_id, 0.5, layer_filter)) {
            HeatmapCell* cell = cell_of(lr.domain, lr.layer, lr.expert);
            if (!cell) continue;
            HeatmapCell& c = *cell;
            c.present = true;
            c.value = lr.log_ratio;
            c.rest_share = lr.rest_share;
        }
    }
    return g;
}

}  // namespace moe::ui
