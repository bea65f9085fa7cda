// The numbers behind one heatmap: a grid of cells (rows: MoE layers of one domain, or the
// domains of one layer; columns: experts) read from analysis/expert_stats — the same
// functions `moewb stats` prints — for one run and one measure. Not a statistic of its own:
// every value is copied from an ExpertShare or DomainLogRatio row. No Qt, so it can run on
// any thread and be tested alone.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/routing_store.h"

namespace moe::ui {

enum class HeatmapAxes {
    experts_by_layers,   // one domain: rows are the run's MoE layers
    experts_by_domains,  // one layer: rows are the run's domains (the DeepSeekMoE paper's figure)
};

enum class HeatmapMeasure {
    share,             // count / (tokens × k)
    ratio_to_uniform,  // (count / tokens) / (k / E) = share · E
    log_ratio,         // ln of the domain's smoothed share over the rest's (α = ½)
    mean_gate_weight,  // gate weight sum / count
};

const char* measure_name(HeatmapMeasure m);   // "share", "ratio to uniform", ...
bool measure_is_diverging(HeatmapMeasure m);  // centred on 0 (log-ratio)

struct HeatmapRequest {
    int64_t run_id = 0;
    HeatmapAxes axes = HeatmapAxes::experts_by_layers;
    HeatmapMeasure measure = HeatmapMeasure::share;
    std::string domain;  // experts_by_layers; empty: the run's first domain
    std::optional<int64_t> layer;  // experts_by_domains; empty: the run's first MoE layer
    // Set: each cell is run_id's value minus this run's (same domain, layer and expert; e.g. an
    // ablated trace against the baseline), shown with the diverging map.
    std::optional<int64_t> minus_run_id;
    // Set: this run's grid of the same domain or layer is loaded too (HeatmapGrid::beside) and
    // drawn next to the first on one colour scale. Not together with minus_run_id.
    std::optional<int64_t> beside_run_id;
};

struct HeatmapCell {
    bool present = false;  // false: the expert does not exist in this row (E differs)
    double value = NAN;    // the measure; NaN when undefined (mean gate weight of an unused expert)
    int64_t count = 0;     // times selected in the row's domain and layer
    int64_t tokens = 0;    // tokens of the row's domain traced in the layer
    int64_t k = 0;
    double share = 0;
    double ratio_to_uniform = 0;
    std::optional<double> mean_gate_weight;
    std::optional<double> rest_share;  // log_ratio: the share in all other domains pooled
    std::optional<double> minus_value;  // a difference grid: the other run's value (value = own − it)
};

struct HeatmapGrid {
    HeatmapRequest request;  // as resolved: domain and layer filled in
    std::string run_label;   // "run 3 · demo-model · datasets (test)"
    std::vector<std::string> domains;  // of the run, for the pickers
    std::vector<int64_t> layers;       // MoE layers of the run
    std::vector<std::string> row_labels;  // "layer 3" or the domain name
    std::vector<int64_t> row_layers;      // the layer of each row
    std::vector<std::string> row_domains;  // the domain of each row
    int64_t n_rows = 0, n_cols = 0;        // n_cols: the largest E
    std::vector<HeatmapCell> cells;        // [n_rows, n_cols]
    bool diverging = false;
    std::vector<HeatmapGrid> beside;       // request.beside_run_id: that run's grid (one)
    const HeatmapCell& at(int64_t row, int64_t col) const { return cells[static_cast<size_t>(row * n_cols + col)]; }
    double min_value() const;  // over present, finite cells (and those of `beside`); 0 when none
    double max_value() const;
    // The hover text of a cell: row, expert, the measure and the counts behind it.
    std::string describe(int64_t row, int64_t col) const;
};

// Reads the grid from the store. Throws moe::Error for a missing run, a log-ratio of a run with
// one domain, a mean gate weight of a run without gate weights (messages from analysis/).
HeatmapGrid load_heatmap(analysis::RoutingStore& store, const HeatmapRequest& request);

}  // namespace moe::ui
