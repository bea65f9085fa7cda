// The runs and corpora panel: the open corpus's domains (documents, tokens, size, source) to choose
// from, a token budget per domain, Trace (as published or with the ablation panel's mask) with
// progress (tokens/s, ETA) and Cancel, and the runs of the open store with their status, to
// pick the run the heatmap shows.
#pragma once

#include <QCheckBox>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QWidget>
#include <functional>
#include <optional>

#include "engine/expert_mask.h"

namespace moe::ui {

class Workbench;

// A tokens-per-domain budget box as the trace and the ablation panels show it: 0 to 100 M
// tokens in steps of `step`, 0 shown as "all".
void setup_token_budget(QSpinBox* box, int step, int value);

class RunsPanel : public QWidget {
    Q_OBJECT
public:
    explicit RunsPanel(Workbench* workbench, QWidget* parent = nullptr);
    QStringList checkedDomains() const;
    qint64 tokenBudget() const;
    void setTokenBudget(qint64 tokens);
    int64_t selectedRun() const;  // 0: none
    void selectRun(int64_t run_id);
    QString progressText() const;
    QString domainCell(int row, int column) const;  // the text shown in the domains table
    QString runCell(int row, int column) const;     // the text shown in the runs table
    // Where "With the ablation mask" takes its mask (the ablation panel's; nullopt: none).
    void setMaskSource(std::function<std::optional<ExpertMask>()> source) { mask_source_ = std::move(source); }
    void setTraceWithMask(bool on) { with_mask_->setChecked(on); }

signals:
    void runSelected(qint64 run_id);
    void chooseCorpusRequested();

public slots:
    void startTrace();
    // Asks (a modal question naming the run, its size and status) whether to delete the run
    // from the store, and deletes it on yes (the runs table's context menu and Delete key).
    void requestDelete(qint64 run_id);

private:
    void showCorpus();
    void fitDomainsHeight(int rows);  // the domains table as tall as that many rows (3 to 8)
    void showTokenCounts();
    void showRuns();
    void showProgress();
    void traceStarted();
    void traceFinished(bool ok, const QString& summary);

    Workbench* workbench_;
    QLabel* corpus_path_;
    QLabel* corpus_error_;
    QTableWidget* domains_;
    QSpinBox* budget_;
    QPushButton* trace_;
    QPushButton* cancel_;
    QCheckBox* with_mask_;
    std::function<std::optional<ExpertMask>()> mask_source_;
    int64_t select_after_trace_ = 0;  // the run a finished trace wrote, selected when the runs are listed
    QProgressBar* progress_;
    QLabel* progress_text_;
    QTableWidget* runs_;
    QLabel* store_label_;
    QLabel* store_error_;
};

}  // namespace moe::ui
