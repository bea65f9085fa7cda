// Stored ablations: the ablations kept in the open routing store (`moewb ablate --db`, the
// ablation panel's "Keep in the store") as a table, one row per ablation with its scores over
// all domains — newest first — and, for the selected one, its scores per domain below; when
// the selected one is a condition of a sweep (kept by one job: the same sweep, baseline and
// time), the sweep's plot of Δloss against its parameter, a line per kind of condition.
// "Use this mask" puts the selected ablation's SPEC and mode into the ablation panel; "Export
// CSV…" writes every stored ablation as `moewb export --ablations` does; "Delete…" (or the
// Delete key) takes the selected one out of the store after a confirmation, as `moewb
// delete-ablation` does. The rows are
// analysis::read_ablations, copied; they are read on a worker (Workbench::requestStoredAblations).
#pragma once

#include <QLabel>
#include <QPushButton>
#include <QTableWidget>
#include <QWidget>
#include <vector>

#include "analysis/ablation.h"

class QCustomPlot;

namespace moe::ui {

class StoredAblationsView : public QWidget {
    Q_OBJECT
public:
    explicit StoredAblationsView(QWidget* parent = nullptr);
    QTableWidget* table() const { return table_; }
    QTableWidget* domainsTable() const { return domains_; }
    QCustomPlot* sweepPlot() const { return sweep_plot_; }  // visible while a sweep's condition is selected
    QString message() const { return message_->text(); }
    int64_t selectedAblation() const;  // 0: none

public slots:
    void showAblations(const std::vector<moe::analysis::StoredAblation>& ablations);
    void showError(const QString& error);           // reading the store failed
    void showDeleteFailure(const QString& error);  // deleting an ablation failed
    void selectAblation(qint64 ablation_id);

signals:
    void useMaskRequested(const QString& spec, const QString& mode);
    void exportRequested();  // every stored ablation as CSV
    void deleteRequested(qint64 ablation_id);  // confirmed by the user

private:
    void showSelected();
    void showSweepOf(const analysis::StoredAblation& selected);
    void confirmDelete();

    std::vector<analysis::StoredAblation> ablations_;
    QLabel* message_;
    QTableWidget* table_;
    QTableWidget* domains_;
    QLabel* sweep_label_;
    QCustomPlot* sweep_plot_;
    QPushButton* use_mask_;
    QPushButton* export_;
    QPushButton* delete_;
};

}  // namespace moe::ui
