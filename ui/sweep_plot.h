// The plot of an ablation sweep, shared by the ablation panel (a sweep just run) and the
// stored ablations window (a sweep kept in the store): Δloss over all domains against the
// sweep's parameter, one line per kind of condition (the experiment itself, each control).
#pragma once

#include <QString>
#include <string>
#include <vector>

class QCustomPlot;

namespace moe::ui {

struct SweepPoint {
    std::string line;  // "most routed", "random", "least-routed", …
    double x = 0;      // the sweep's parameter
    double delta_loss = 0;
};

// Sets up an empty sweep plot: axis labels, the legend in the top left corner.
void setup_sweep_plot(QCustomPlot* plot, const QString& x_label);
// Replaces what the plot shows with the points, one graph per line (in line order, points by
// x), the panel's colours; x from 0, y from 0 (or a little under the lowest Δloss) to a little
// over the highest.
void plot_sweep(QCustomPlot* plot, const std::vector<SweepPoint>& points);

}  // namespace moe::ui
