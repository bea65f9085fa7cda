// Expert detail: one routed expert of one MoE layer in a run — its share of the layer's
// selections in each domain as bars, against the uniform share 1 / E, with the counts, ratio
// to uniform and mean gate weight of each domain in a table; the tokens routed to it most
// (by enrichment over their frequency in the run, those routed to it at least a chosen number
// of times, as `moewb stats --vocab`) and the experts selected together with it
// most often. The numbers are analysis/ rows (expert_shares, vocabulary_specialisation,
// coactivation over all domains), copied; load_expert_detail has no Qt and runs on a worker.
#pragma once

#include <QLabel>
#include <QSpinBox>
#include <QTableWidget>
#include <QWidget>
#include <string>
#include <vector>

#include "analysis/expert_stats.h"
#include "analysis/token_stats.h"

class QCustomPlot;
class QCPBars;

namespace moe::ui {

// Another expert of the layer selected for the same tokens (all domains pooled).
struct CoactivatedExpert {
    int64_t expert = 0;
    int64_t together = 0;     // tokens whose top-k holds both
    double p_with = 0;        // together / tokens that select this expert
    double lift = 0;          // P(both) / (P(this) P(other)); 1 = independent
};

struct ExpertDetail {
    int64_t run_id = 0, layer = 0, expert = 0;
    std::vector<analysis::ExpertShare> domains;         // one row per domain of the run, by name
    int64_t selections = 0;                             // tokens that select the expert, all domains
    int64_t min_count = analysis::kVocabMinCount;       // of top_tokens
    std::vector<analysis::TokenEnrichment> top_tokens;  // routed to it ≥ min_count times, most enriched first
    std::vector<CoactivatedExpert> coactivated;         // most often together first
};

inline constexpr size_t kDetailTopTokens = 15, kDetailCoactivated = 10;

ExpertDetail load_expert_detail(analysis::RoutingStore& store, int64_t run_id, int64_t layer, int64_t expert,
                                int64_t min_count = analysis::kVocabMinCount);

class ExpertDetailView : public QWidget {
    Q_OBJECT
public:
    explicit ExpertDetailView(QWidget* parent = nullptr);
    const ExpertDetail& detail() const { return detail_; }
    QCustomPlot* chart() const { return chart_; }
    QTableWidget* table() const { return table_; }
    QTableWidget* tokensTable() const { return tokens_; }
    QSpinBox* minCountBox() const { return min_count_; }
    QString tokensNote() const { return tokens_note_->text(); }
    QTableWidget* coactivatedTable() const { return coactivated_; }
    QString title() const { return title_->text(); }
    // Writes the bar chart as shown to a .png, .svg, .pdf or .jpg file (false: nothing shown,
    // an unknown suffix or a file that cannot be written).
    bool exportChart(const QString& path);

public slots:
    void showDetail(const moe::ui::ExpertDetail& detail);
    void showError(const QString& error);

signals:
    // The top tokens' minimum count was changed by hand: the shown expert is to be loaded again.
    void minCountChanged(qint64 min_count);

private:
    ExpertDetail detail_;
    QLabel* title_;
    QCustomPlot* chart_;
    QCPBars* bars_;
    QTableWidget* table_;
    QTableWidget* tokens_;
    QSpinBox* min_count_;
    QLabel* tokens_note_;
    QTableWidget* coactivated_;
};

}  // namespace moe::ui
