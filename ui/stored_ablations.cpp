// StoredAblationsView; see stored_ablations.h.
#include "ui/stored_ablations.h"

#include <QAction>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeySequence>
#include <QMessageBox>
#include <QSignalBlocker>
#include <QVBoxLayout>
#include <algorithm>
#include <map>
#include <qcustomplot.h>

#include "ui/sweep_plot.h"
#include "ui/widget_helpers.h"

namespace moe::ui {

namespace {

QString q(const std::string& s) { return QString::fromStdString(s); }

// "skip-top 0.125 (control: random)", "k 4", "" for a single mask.
QString experiment(const analysis::StoredAblation& a) {
    if (a.sweep.empty()) return {};
    QString t = q(a.sweep);
    if (a.value) t += " " + QString::number(*a.value, 'g', 6);
    if (!a.control.empty()) t += QObject::tr(" (control: %1)").arg(q(a.control));
    return t;
}


}  // namespace

StoredAblationsView::StoredAblationsView(QWidget* parent)
    : QWidget(parent),
      message_(new QLabel(this)),
      table_(new QTableWidget(this)),
      domains_(new QTableWidget(this)),
      sweep_label_(new QLabel(this)),
      sweep_plot_(new QCustomPlot(this)),
      use_mask_(new QPushButton(tr("Use this mask"), this)),
      export_(new QPushButton(tr("Export CSV…"), this)),
      delete_(new QPushButton(tr("Delete…"), this)) {
    setObjectName("storedAblations");
    message_->setObjectName("storedAblationsMessage");
    message_->setWordWrap(true);
    table_->setObjectName("storedAblationsTable");
    setup_table(table_, {tr("Id"), tr("Mask"), tr("Mode"), tr("Experiment"), tr("Δloss"), tr("PPL ratio"), tr("KL"),
                         tr("Top-1 agree"), tr("Baseline loss"), tr("Ablated loss"), tr("Tokens"), tr("Model"),
                         tr("Corpus"), tr("Per domain"), tr("Created"), tr("Computed by"), tr("Context")});
    table_->horizontalHeaderItem(4)->setToolTip(tr("All domains: ablated minus baseline loss, nats per token"));
    table_->horizontalHeaderItem(15)->setToolTip(
        tr("The backend (cpu, cuda, or cuda-bf16: BF16 activations) and the weights' type the baseline and the "
           "ablation were computed with"));
    table_->horizontalHeaderItem(16)->setToolTip(
        tr("Tokens a window predicts from, and the tokens of each forward step inside it"));
    domains_->setObjectName("storedAblationDomains");
    setup_table(domains_, {tr("Domain"), tr("Δloss"), tr("PPL ratio"), tr("KL"), tr("Top-1 agree"), tr("Baseline loss"),
                     tr("Ablated loss"), tr("Tokens")});
    domains_->setSelectionMode(QAbstractItemView::NoSelection);
    use_mask_->setObjectName("useStoredMask");
    use_mask_->setToolTip(tr("Put this ablation's mask and mode into the ablation panel (resolved against the open model)"));
    use_mask_->setEnabled(false);
    export_->setObjectName("exportStoredAblations");
    export_->setToolTip(tr("Every stored ablation as CSV, a row per domain and \"all\" (moewb export --ablations)"));
    connect(table_, &QTableWidget::itemSelectionChanged, this, &StoredAblationsView::showSelected);
    connect(use_mask_, &QPushButton::clicked, this, [this] {
        const int64_t id = selectedAblation();
        for (const analysis::StoredAblation& a : ablations_)
            if (a.ablation_id == id) emit useMaskRequested(q(a.mask_spec), q(a.mask_mode));
    });
    connect(export_, &QPushButton::clicked, this, &StoredAblationsView::exportRequested);
    delete_->setObjectName("deleteStoredAblation");
    delete_->setToolTip(tr("Take the selected ablation and its scores out of the store (moewb delete-ablation)"));
    delete_->setEnabled(false);
    connect(delete_, &QPushButton::clicked, this, &StoredAblationsView::confirmDelete);
    auto* del = new QAction(tr("Delete ablation"), table_);
    del->setObjectName("deleteStoredAblationAction");
    del->setShortcut(QKeySequence::Delete);
    del->setShortcutContext(Qt::WidgetShortcut);
    connect(del, &QAction::triggered, this, &StoredAblationsView::confirmDelete);
    table_->addAction(del);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(use_mask_);
    buttons->addWidget(delete_);
    buttons->addStretch(1);
    buttons->addWidget(export_);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(message_);
    layout->addWidget(table_, 3);
    layout->addWidget(new QLabel(tr("Per domain, the selected ablation:"), this));
    layout->addWidget(domains_, 2);
    sweep_label_->setObjectName("storedSweepLabel");
    sweep_plot_->setObjectName("storedSweepPlot");
    sweep_plot_->setMinimumHeight(170);
    setup_sweep_plot(sweep_plot_, QString());
    sweep_label_->hide();
    sweep_plot_->hide();
    layout->addWidget(sweep_label_);
    layout->addWidget(sweep_plot_, 2);
    layout->addLayout(buttons);
}

int64_t StoredAblationsView::selectedAblation() const {
    const auto rows = table_->selectionModel()->selectedRows();
    if (rows.isEmpty()) return 0;
    return table_->item(rows.front().row(), 0)->data(Qt::UserRole).toLongLong();
}

void StoredAblationsView::showAblations(const std::vector<analysis::StoredAblation>& ablations) {
    const int64_t keep = selectedAblation();
    ablations_ = ablations;
    message_->setStyleSheet(QString());
    message_->setText(ablations_.empty()
                          ? tr("No ablation is kept in this store yet: evaluate with \"Keep in the store\" checked, "
                               "or run moewb ablate with --db.")
                      : ablations_.size() == 1 ? tr("1 ablation is kept in this store.")
                                               : tr("%1 ablations are kept in this store, newest first.").arg(ablations_.size()));
    {
        const QSignalBlocker quiet(table_);
        table_->setRowCount(static_cast<int>(ablations_.size()));
        for (int r = 0; r < static_cast<int>(ablations_.size()); ++r) {
            const analysis::StoredAblation& a = ablations_[ablations_.size() - 1 - static_cast<size_t>(r)];
            auto* id = table_cell(QString::number(a.ablation_id), true);
            id->setData(Qt::UserRole, static_cast<qlonglong>(a.ablation_id));
            table_->setItem(r, 0, id);
            auto* mask = table_cell(q(a.mask_spec), false);
            mask->setToolTip(q(a.mask_spec));
            table_->setItem(r, 1, mask);
            table_->setItem(r, 2, table_cell(q(a.mask_mode), false));
            QString exp = experiment(a);
            if (a.from_run) exp += tr(" from run %1").arg(*a.from_run);
            table_->setItem(r, 3, table_cell(exp, false));
            fill_score_cells(table_, r, 4, a.all());
            table_->setItem(r, 11, table_cell(q(a.model_name), false));
            table_->setItem(r, 12, table_cell(q(a.corpus_name) + " (" + q(a.split) + ")", false));
            table_->setItem(r, 13, table_cell(a.max_tokens > 0 ? tr("%1 tokens").arg(a.max_tokens) : tr("all"), true));
            table_->setItem(r, 14, table_cell(q(a.created), false));
            table_->setItem(r, 15, table_cell(q(a.source) + ", " + q(a.dtype), false));
            table_->setItem(r, 16,
                            table_cell(a.step_tokens > 0 ? tr("%1 in steps of %2").arg(a.context).arg(a.step_tokens)
                                                         : QString::number(a.context),
                                       false));
        }
    }
    // A long mask (two experts off in each of V3's 58 layers) is elided; its tooltip is whole.
    table_->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Interactive);
    table_->resizeColumnToContents(1);
    table_->setColumnWidth(1, std::min(table_->columnWidth(1), 260));
    if (keep) selectAblation(keep);
    if (!selectedAblation() && table_->rowCount() > 0) table_->selectRow(0);
    showSelected();
}

void StoredAblationsView::showError(const QString& error) {
    message_->setStyleSheet("color: #b3261e");
    message_->setText(tr("Cannot read the stored ablations: %1").arg(error));
}

void StoredAblationsView::showDeleteFailure(const QString& error) {
    message_->setStyleSheet("color: #b3261e");
    message_->setText(tr("Cannot delete the ablation: %1").arg(error));
}

void StoredAblationsView::selectAblation(qint64 ablation_id) {
    for (int r = 0; r < table_->rowCount(); ++r)
        if (table_->item(r, 0)->data(Qt::UserRole).toLongLong() == ablation_id) table_->selectRow(r);
}

void StoredAblationsView::showSweepOf(const analysis::StoredAblation& selected) {
    if (selected.sweep.empty()) return;
    std::vector<SweepPoint> points;
    for (const analysis::StoredAblation& a : ablations_) {
        if (a.sweep != selected.sweep || a.baseline_id != selected.baseline_id || a.created != selected.created) continue;
        if (!a.value) return;  // a sweep of named conditions (shared): the table says it all
        // The experiment's line named as the panel names it; each control its own.
        const std::string line = !a.control.empty() ? a.control : a.sweep == "top-routed" ? "most routed" : a.sweep;
        points.push_back({line, *a.value, a.all().delta_loss()});
    }
    if (points.size() < 2) return;
    // What the parameter is, as `moewb ablate --sweep` names it.
    const std::map<std::string, QString> x_of{{"top-routed", tr("fraction of routed experts switched off")},
                                              {"skip-top", tr("ratio of the top experts skipped per token")},
                                              {"k", tr("routed experts per token (k)")}};
    sweep_plot_->xAxis->setLabel(x_of.count(selected.sweep) ? x_of.at(selected.sweep) : q(selected.sweep));
    sweep_label_->setText(tr("The sweep this ablation belongs to: %1 conditions of %2, kept %3.")
                              .arg(points.size())
                              .arg(q(selected.sweep), q(selected.created)));
    sweep_label_->show();
    sweep_plot_->show();
    plot_sweep(sweep_plot_, points);
}

void StoredAblationsView::confirmDelete() {
    const int64_t id = selectedAblation();
    const auto a = std::find_if(ablations_.begin(), ablations_.end(), [&](const analysis::StoredAblation& x) { return x.ablation_id == id; });
    if (a == ablations_.end()) return;
    QString what = q(a->mask_spec);
    if (!experiment(*a).isEmpty()) what += ", " + experiment(*a);
    QMessageBox ask(QMessageBox::Warning, tr("Delete ablation %1").arg(id),
                    tr("Delete ablation %1 (%2 on %3, %4) and its scores from the store?\n\nThis cannot be undone.")
                        .arg(id)
                        .arg(q(a->model_name), q(a->corpus_name), what),
                    QMessageBox::Yes | QMessageBox::Cancel, this);
    ask.setObjectName("confirmDeleteAblation");
    ask.button(QMessageBox::Yes)->setText(tr("Delete"));
    ask.setDefaultButton(QMessageBox::Cancel);
    if (ask.exec() == QMessageBox::Yes) emit deleteRequested(id);
}

void StoredAblationsView::showSelected() {
    const int64_t id = selectedAblation();
    use_mask_->setEnabled(id != 0);
    delete_->setEnabled(id != 0);
    domains_->setRowCount(0);
    sweep_label_->hide();
    sweep_plot_->hide();
    for (const analysis::StoredAblation& a : ablations_) {
        if (a.ablation_id != id) continue;
        showSweepOf(a);
        std::vector<analysis::AblationScore> rows = a.domains;
        rows.push_back(a.all());
        domains_->setRowCount(static_cast<int>(rows.size()));
        for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
            domains_->setItem(i, 0, table_cell(q(rows[static_cast<size_t>(i)].domain), false));
            fill_score_cells(domains_, i, 1, rows[static_cast<size_t>(i)]);
        }
    }
}

}  // namespace moe::ui
