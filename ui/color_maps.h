// The colour maps of the heatmaps, as QCustomPlot gradients built from control points:
// viridis (perceptually uniform, readable in greyscale and by the colour-blind; matplotlib's
// samples) for magnitudes, and ColorBrewer's RdBu reversed (blue < 0 < red, white at 0) for
// signed quantities such as log-ratios and differences. Cells without a value are transparent.
#pragma once

#include <qcustomplot.h>

namespace moe::ui {

QCPColorGradient viridis_gradient();
QCPColorGradient diverging_gradient();

}  // namespace moe::ui
