// Expert detail: one routed expert of one MoE layer in a run — its share of the layer's
// selections in each domain as bars, against the uniform share k / E, with the counts, ratio
// to uniform and mean gate weight of each domain in a table. The numbers are analysis/
// expert_stats rows (expert_shares), copied; load_expert_detail has no Qt and runs on a worker.
#pragma once

#include <QLabel>
#include <QTableWidget>
#include <QWidget>
#include <string>
#include <vector>

#include "analysis/expert_stats.h"

class QCustomPlot;
class QCPBars;

namespace moe::ui {

struct ExpertDetail {
    int64_t run_id = 0, layer = 0, expert = 0;
    std::vector<analysis::ExpertShare> domains;  // one row per domain of the run, by name
};

ExpertDetail load_expert_detail(analysis::RoutingStore& store, int64_t run_id, int64_t layer, int64_t expert);

class ExpertDetailView : public QWidget {
    Q_OBJECT
public:
    explicit ExpertDetailView(QWidget* parent = nullptr);
    const ExpertDetail& detail() const { return detail_; }
    QCustomPlot* chart() const { return chart_; }
    QTableWidget* table() const { return table_; }
    QString title() const { return title_->text(); }

public slots:
    void showDetail(const moe::ui::ExpertDetail& detail);
    void showError(const QString& error);

private:
    ExpertDetail detail_;
    QLabel* title_;
    QCustomPlot* chart_;
    QCPBars* bars_;
    QTableWidget* table_;
};

}  // namespace moe::ui
