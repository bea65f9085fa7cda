// The plot of an ablation sweep; see sweep_plot.h.
#include "ui/sweep_plot.h"

#include <qcustomplot.h>

#include <algorithm>
#include <map>

namespace moe::ui {

void setup_sweep_plot(QCustomPlot* plot, const QString& x_label) {
    plot->xAxis->setLabel(x_label);
    plot->yAxis->setLabel(QObject::tr("Δloss, all domains (nats)"));
    plot->legend->setVisible(true);
    plot->legend->setFont(QFont(plot->font().family(), plot->font().pointSize() - 1));
    plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);
}

void plot_sweep(QCustomPlot* plot, const std::vector<SweepPoint>& points) {
    std::map<std::string, std::pair<QVector<double>, QVector<double>>> lines;
    for (const SweepPoint& p : points) {
        lines[p.line].first << p.x;
        lines[p.line].second << p.delta_loss;
    }
    plot->clearGraphs();
    const std::map<std::string, QColor> colors{{"most routed", QColor("#d6604d")},
                                               {"least-routed", QColor("#4393c3")},
                                               {"random", QColor("#7f7f7f")}};
    double hi = 0, lo = 0;
    for (const auto& [name, xy] : lines) {
        QCPGraph* g = plot->addGraph();
        g->setName(QString::fromStdString(name));
        g->setData(xy.first, xy.second);  // sorted by x
        const auto color = colors.count(name) ? colors.at(name) : QColor("#333");
        g->setPen(QPen(color, 2));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, color, 6));
        for (double v : xy.second) {
            hi = std::max(hi, v);
            lo = std::min(lo, v);
        }
    }
    plot->rescaleAxes();
    plot->xAxis->setRange(std::min(0.0, plot->xAxis->range().lower), plot->xAxis->range().upper * 1.1);
    // A condition that helps (Δloss below 0) stays off the axis too.
    const double span = std::max(hi - lo, 1e-6);
    plot->yAxis->setRange(lo < 0 ? lo - 0.08 * span : 0.0, hi + 0.15 * span);
    plot->replot();
}

}  // namespace moe::ui
