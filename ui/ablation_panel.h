// The ablation panel: the expert toggle grid (ui/expert_grid.h) with quick actions — shared
// experts off in all layers, the top-N / bottom-N most selected experts per layer of the
// selected run, random N (seeded), clear — the reroute/drop mode, the mask as its SPEC text
// (editable; saved and loaded as JSON), and the evaluation of the mask on chosen domains
// (ui/ablation_jobs.h) with progress and Cancel, its results per domain as a table and a bar
// chart of Δloss; and the top-routed sweep of the selected run (most, least and random
// experts switched off at several fractions) as a table and a line plot of Δloss against the
// fraction, like the DeepSeekMoE paper's figure; the scores export as `moewb ablate --csv`
// writes them. Presentation only: masks come from MaskState and analysis/, numbers from
// run_ablation.
#pragma once

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QTableWidget>
#include <QWidget>
#include <optional>

#include "ui/ablation_jobs.h"
#include "ui/mask_state.h"

class QCustomPlot;
class QCPBars;

namespace moe::ui {

class Workbench;
class ExpertGrid;

class AblationPanel : public QWidget {
    Q_OBJECT
public:
    explicit AblationPanel(Workbench* workbench, QWidget* parent = nullptr);

    AblationJobs* jobs() const { return jobs_; }
    const MaskState& maskState() const { return mask_; }
    QString specText() const { return spec_->text(); }
    // The engine's mask of the grid (nullopt when nothing is off or it does not resolve).
    std::optional<ExpertMask> currentMask() const;
    QString maskError() const { return mask_error_->isHidden() ? QString() : mask_error_->text(); }
    ExpertGrid* grid() const { return grid_; }
    QTableWidget* resultsTable() const { return results_; }
    QCustomPlot* chart() const { return chart_; }
    QCustomPlot* sweepChart() const { return sweep_chart_; }
    void setSweepFractions(const QString& text) { fractions_->setText(text); }
    // Writes the chart shown (the Δloss bars or the sweep plot); see ui/plot_export.h.
    bool exportChart(const QString& path);
    // Writes the scores shown (the last evaluation or sweep that ended) as `moewb ablate --csv`
    // does: one row per condition × domain and the condition's "all" (false: none, a cancelled
    // run's partial scores, or a file that could not be written, said in the status line).
    bool exportCsv(const QString& path);
    QString statusText() const { return status_->text(); }
    void setDomainsChecked(const QStringList& domains);
    void setTokenBudget(qint64 tokens);
    bool saveMask(const QString& path);
    bool loadMask(const QString& path);

signals:
    void maskChanged(const QString& spec);
    void storedAblationsRequested();  // "Stored…": the ablations kept in the store

public slots:
    void setRun(qint64 run_id);  // the run top-N / bottom-N are taken from
    void evaluate();
    void sweep();  // the top-routed sweep of the selected run
    void setSpec(const QString& spec);  // as if typed into the SPEC field
    void useMask(const QString& spec, const QString& mode);  // a stored ablation's SPEC and mode ("reroute" | "drop")

private:
    void resetForModel();
    void enableEvaluation();
    void showCorpus();
    void maskEdited();  // the grid or a quick action changed mask_
    void toggle(int row, int column);
    void quick(QuickMask kind);
    void showResult();
    void showSweep();
    void showMaskError(const QString& error);

    Workbench* workbench_;
    AblationJobs* jobs_;
    MaskState mask_;
    int64_t run_id_ = 0;
    QLineEdit* spec_;
    QLabel* mask_error_;
    QComboBox* mode_;
    QSpinBox* n_;
    QSpinBox* seed_;
    QLabel* run_label_;
    ExpertGrid* grid_;
    QSlider* cell_size_;
    QListWidget* domains_;
    QSpinBox* budget_;
    QCheckBox* store_;
    QPushButton* evaluate_;
    QPushButton* cancel_;
    QProgressBar* progress_;
    QLabel* status_;
    QTableWidget* results_;
    QCustomPlot* chart_;
    QCPBars* bars_ = nullptr;
    QLineEdit* fractions_;
    QPushButton* sweep_;
    QCustomPlot* sweep_chart_;
    QPushButton* export_csv_;
    std::optional<analysis::AblationResult> shown_;  // what the table shows, unless a cancelled run's
};

}  // namespace moe::ui
