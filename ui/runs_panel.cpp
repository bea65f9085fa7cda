// RunsPanel; see runs_panel.h.
#include "ui/runs_panel.h"

#include <QDateTime>
#include <QFileInfo>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <utility>

#include "ui/model_summary.h"
#include "ui/widget_helpers.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }

QString duration(double seconds) {
    if (seconds < 0) return QStringLiteral("—");
    const auto s = static_cast<long long>(std::llround(seconds));
    if (s >= 3600) return QString("%1:%2:%3").arg(s / 3600).arg((s / 60) % 60, 2, 10, QChar('0')).arg(s % 60, 2, 10, QChar('0'));
    return QString("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QChar('0'));
}


}  // namespace

void setup_token_budget(QSpinBox* box, int step, int value) {
    box->setRange(0, 100'000'000);
    box->setSingleStep(step);
    box->setValue(value);
    box->setSpecialValueText(QObject::tr("all"));
    box->setSuffix(QObject::tr(" tokens"));
}

RunsPanel::RunsPanel(Workbench* workbench, QWidget* parent)
    : QWidget(parent), workbench_(workbench), corpus_path_(new QLabel(tr("No corpus open"), this)),
      corpus_error_(error_label(this, "corpusError")), domains_(new QTableWidget(this)), budget_(new QSpinBox(this)),
      trace_(new QPushButton(tr("Trace"), this)), cancel_(new QPushButton(tr("Cancel"), this)),
      with_mask_(new QCheckBox(tr("With the ablation mask"), this)),
      progress_(new QProgressBar(this)), progress_text_(new QLabel(this)), runs_(new QTableWidget(this)),
      store_label_(new QLabel(tr("No store open"), this)), store_error_(error_label(this, "storeError")) {
    // --- corpus and trace ---
    auto* corpus_box = new QGroupBox(tr("Corpus"), this);
    auto* choose = new QPushButton(tr("Choose…"), corpus_box);
    choose->setToolTip(tr("A directory of domains (like datasets/), a directory with test.jsonl, or a .jsonl file"));
    corpus_path_->setWordWrap(true);
    corpus_path_->setObjectName("corpusPath");
    auto* corpus_top = new QHBoxLayout;
    corpus_top->addWidget(corpus_path_, 1);
    corpus_top->addWidget(choose);
    domains_->setObjectName("domains");
    setup_table(domains_, {tr("Domain"), tr("Documents"), tr("Tokens"), tr("Size"), tr("Source")});
    domains_->setSelectionMode(QAbstractItemView::NoSelection);
    // As tall as its domains (six, the bundled corpora, before any is shown; at most eight
    // before it scrolls), no taller: the runs table below gets the rest of a short screen.
    domains_->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    fitDomainsHeight(6);
    budget_->setObjectName("tokenBudget");
    setup_token_budget(budget_, 1000, 4000);
    budget_->setToolTip(tr("Tokens traced per domain (documents in file order, the last one cut); 0: all"));
    trace_->setObjectName("startTrace");
    trace_->setToolTip(tr("Trace the checked domains into the store (Ctrl+T). The same trace run again resumes an incomplete run."));
    with_mask_->setObjectName("traceWithMask");
    with_mask_->setToolTip(tr("Trace with the experts the ablation panel switches off (its mask and mode), for the "
                              "heatmap's Compare: this run minus the one traced as published"));
    cancel_->setObjectName("cancelTrace");
    cancel_->setToolTip(tr("Stop after the current document; the run stays incomplete and can be resumed"));
    cancel_->setEnabled(false);
    progress_->setObjectName("traceProgress");
    progress_->setRange(0, 1000);
    progress_->setValue(0);
    progress_->setTextVisible(false);
    progress_text_->setObjectName("traceProgressText");
    progress_text_->setWordWrap(true);
    progress_text_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    // Both shown once there is something to say: before a trace they would only take room.
    progress_->hide();
    progress_text_->hide();
    auto* trace_row = new QHBoxLayout;
    trace_row->addWidget(new QLabel(tr("Per domain:"), corpus_box));
    trace_row->addWidget(budget_, 1);
    trace_row->addWidget(trace_);
    trace_row->addWidget(cancel_);
    auto* corpus_layout = new QVBoxLayout(corpus_box);
    corpus_layout->addLayout(corpus_top);
    corpus_layout->addWidget(corpus_error_);
    corpus_layout->addWidget(domains_);
    corpus_layout->addLayout(trace_row);
    corpus_layout->addWidget(with_mask_);
    corpus_layout->addWidget(progress_);
    corpus_layout->addWidget(progress_text_);

    // --- runs of the store ---
    auto* runs_box = new QGroupBox(tr("Runs"), this);
    store_label_->setObjectName("storePath");
    store_label_->setWordWrap(true);
    store_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    runs_->setObjectName("runs");
    runs_->setMinimumHeight(runs_->horizontalHeader()->sizeHint().height() + 4 * runs_->verticalHeader()->defaultSectionSize() + 4);
    setup_table(runs_, {tr("Run"), tr("Status"), tr("Model"), tr("Source"), tr("Corpus"), tr("Docs"), tr("Tokens"),
                        tr("Mask"), tr("Started")});
    auto* runs_layout = new QVBoxLayout(runs_box);
    runs_layout->addWidget(store_label_);
    runs_layout->addWidget(store_error_);
    runs_layout->addWidget(runs_, 1);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(corpus_box);
    layout->addWidget(runs_box, 1);

    connect(choose, &QPushButton::clicked, this, &RunsPanel::chooseCorpusRequested);
    connect(trace_, &QPushButton::clicked, this, &RunsPanel::startTrace);
    connect(cancel_, &QPushButton::clicked, workbench_, &Workbench::cancelTrace);
    connect(runs_, &QTableWidget::itemSelectionChanged, this, [this] {
        if (const int64_t id = selectedRun()) emit runSelected(id);
    });
    connect(workbench_, &Workbench::corpusOpened, this, &RunsPanel::showCorpus);
    connect(workbench_, &Workbench::corpusTokensCounted, this, &RunsPanel::showTokenCounts);
    connect(workbench_, &Workbench::corpusFailed, this, [this](const QString& path, const QString& error) {
        corpus_path_->setText(path);
        corpus_error_->setText(error);
        corpus_error_->show();
    });
    connect(workbench_, &Workbench::runsChanged, this, &RunsPanel::showRuns);
    // Delete run…: from the context menu of a run, or the Delete key on the selected one.
    runs_->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(runs_, &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
        const QTableWidgetItem* it = runs_->itemAt(pos);
        if (!it) return;
        const qint64 id = runs_->item(it->row(), 0)->data(Qt::UserRole).toLongLong();
        QMenu menu(this);
        QAction* remove = menu.addAction(tr("Delete run %1…").arg(id));
        if (menu.exec(runs_->viewport()->mapToGlobal(pos)) == remove) requestDelete(id);
    });
    auto* delete_key = new QAction(tr("Delete run"), runs_);
    delete_key->setObjectName("deleteRun");
    delete_key->setShortcut(QKeySequence::Delete);
    delete_key->setShortcutContext(Qt::WidgetShortcut);
    runs_->addAction(delete_key);
    connect(delete_key, &QAction::triggered, this, [this] {
        if (const int64_t id = selectedRun()) requestDelete(id);
    });
    connect(workbench_, &Workbench::storeOpened, this, [this](const QString& path) {
        store_label_->setText(tr("Store: %1").arg(path));
        store_error_->hide();
    });
    connect(workbench_, &Workbench::storeFailed, this, [this](const QString& path, const QString& error) {
        store_label_->setText(tr("Store: %1").arg(path));
        store_error_->setText(error);
        store_error_->show();
    });
    connect(workbench_, &Workbench::modelOpened, this, [this] {
        // A model without a usable tokenizer cannot trace text: say why on the button.
        trace_->setEnabled(workbench_->canTrace() && !workbench_->traceRunning());
        trace_->setToolTip(workbench_->canTrace()
                               ? tr("Trace the checked domains into the store (Ctrl+T). The same trace run again "
                                    "resumes an incomplete run.")
                           : !workbench_->hasModel()
                               ? tr("This model directory has no weights: its routing is captured from a server "
                                    "(moewb capture)")
                               : tr("This model cannot trace text: %1")
                                     .arg(q(workbench_->modelSummary().tokenizer_problem)));
    });
    connect(workbench_, &Workbench::traceStarted, this, &RunsPanel::traceStarted);
    connect(workbench_, &Workbench::traceProgress, this, &RunsPanel::showProgress);
    connect(workbench_, &Workbench::traceFinished, this, &RunsPanel::traceFinished);
}

QStringList RunsPanel::checkedDomains() const {
    QStringList out;
    for (int r = 0; r < domains_->rowCount(); ++r)
        if (domains_->item(r, 0)->checkState() == Qt::Checked) out << domains_->item(r, 0)->text();
    return out;
}

qint64 RunsPanel::tokenBudget() const { return budget_->value(); }
void RunsPanel::setTokenBudget(qint64 tokens) { budget_->setValue(static_cast<int>(tokens)); }

int64_t RunsPanel::selectedRun() const {
    const auto rows = runs_->selectionModel()->selectedRows();
    if (rows.isEmpty()) return 0;
    return runs_->item(rows.front().row(), 0)->data(Qt::UserRole).toLongLong();
}

void RunsPanel::selectRun(int64_t run_id) {
    for (int r = 0; r < runs_->rowCount(); ++r)
        if (runs_->item(r, 0)->data(Qt::UserRole).toLongLong() == run_id) runs_->selectRow(r);
}

QString RunsPanel::progressText() const { return progress_text_->text(); }

QString RunsPanel::domainCell(int row, int column) const {
    const QTableWidgetItem* it = domains_->item(row, column);
    return it ? it->text() : QString();
}

QString RunsPanel::runCell(int row, int column) const {
    const QTableWidgetItem* it = runs_->item(row, column);
    return it ? it->text() : QString();
}

void RunsPanel::startTrace() {
    const QStringList domains = checkedDomains();
    if (domains.isEmpty()) {
        progress_text_->setText(tr("Check at least one domain to trace."));
        progress_text_->show();
        return;
    }
    std::optional<ExpertMask> mask;
    if (with_mask_->isChecked()) {
        if (mask_source_) mask = mask_source_();
        if (!mask || mask->empty()) {
            progress_text_->setText(tr("The ablation panel's mask switches nothing off: toggle experts there, or "
                                       "uncheck \"With the ablation mask\"."));
            progress_text_->show();
            return;
        }
    }
    workbench_->startTrace(domains, budget_->value(), mask);
}

void RunsPanel::showCorpus() {
    const CorpusSummary& c = *workbench_->corpus();
    corpus_path_->setText(tr("%1 (split %2)").arg(q(c.corpus.path), q(c.corpus.split)));
    corpus_error_->hide();
    domains_->setRowCount(static_cast<int>(c.domains.size()));
    for (int r = 0; r < static_cast<int>(c.domains.size()); ++r) {
        const CorpusDomainSummary& d = c.domains[static_cast<size_t>(r)];
        auto* name = new QTableWidgetItem(q(d.name));
        name->setFlags(Qt::ItemIsUserCheckable | Qt::ItemIsEnabled);
        name->setCheckState(Qt::Checked);
        domains_->setItem(r, 0, name);
        domains_->setItem(r, 1, table_cell(QString::number(d.documents), true));
        domains_->setItem(r, 2, table_cell(d.tokens >= 0 ? QString::number(d.tokens) : QString("—"), true));
        domains_->item(r, 2)->setToolTip(tr("tokens with the open model's tokenizer"));
        domains_->setItem(r, 3, table_cell(q(format_bytes(d.bytes)), true));
        auto* source = table_cell(q(d.source), false);
        source->setToolTip(q(d.source) + (d.licence.empty() ? "" : "\n" + tr("licence: ") + q(d.licence)));
        domains_->setItem(r, 4, source);
    }
    fitDomainsHeight(domains_->rowCount());
}

void RunsPanel::fitDomainsHeight(int rows) {
    rows = std::clamp(rows, 3, 8);
    domains_->setFixedHeight(domains_->horizontalHeader()->sizeHint().height() +
                             rows * domains_->verticalHeader()->defaultSectionSize() + 2 * domains_->frameWidth());
}

void RunsPanel::showTokenCounts() {
    const CorpusSummary& c = *workbench_->corpus();
    for (int r = 0; r < domains_->rowCount() && r < static_cast<int>(c.domains.size()); ++r)
        domains_->item(r, 2)->setText(QString::number(c.domains[static_cast<size_t>(r)].tokens));
}

void RunsPanel::requestDelete(qint64 run_id) {
    const auto& runs = workbench_->runs();
    const auto run = std::find_if(runs.begin(), runs.end(), [&](const analysis::RunInfo& r) { return r.run_id == run_id; });
    if (run == runs.end()) return;
    QString text = tr("Delete run %1 (%2 on %3, %4 tokens, %5) and all its routing from the store?")
                       .arg(run_id)
                       .arg(q(run->model_name), q(run->corpus_name))
                       .arg(run->n_tokens)
                       .arg(q(run->status));
    if (run->status != "complete")
        text += "\n\n" + tr("It is incomplete: if a trace elsewhere is writing it, that trace will stop.");
    text += "\n\n" + tr("This cannot be undone.");
    QMessageBox ask(QMessageBox::Warning, tr("Delete run %1").arg(run_id), text, QMessageBox::Yes | QMessageBox::Cancel, this);
    ask.setObjectName("confirmDeleteRun");
    ask.button(QMessageBox::Yes)->setText(tr("Delete"));
    ask.setDefaultButton(QMessageBox::Cancel);
    if (ask.exec() == QMessageBox::Yes) workbench_->deleteRun(run_id);
}

void RunsPanel::showRuns() {
    const int64_t keep = selectedRun();
    const auto& runs = workbench_->runs();
    QSignalBlocker block(runs_);
    runs_->setRowCount(static_cast<int>(runs.size()));
    // Newest first: the run just traced is at the top.
    for (int r = 0; r < static_cast<int>(runs.size()); ++r) {
        const auto& run = runs[runs.size() - 1 - static_cast<size_t>(r)];
        auto* id = table_cell(QString::number(run.run_id), true);
        id->setData(Qt::UserRole, static_cast<qlonglong>(run.run_id));
        runs_->setItem(r, 0, id);
        auto* status = table_cell(q(run.status), false);
        if (run.status != "complete") status->setForeground(QColor("#9a6700"));
        runs_->setItem(r, 1, status);
        runs_->setItem(r, 2, table_cell(q(run.model_name), false));
        // Where the routing came from: this engine's backend, or a server that was captured.
        auto* source = table_cell(q(run.source), false);
        source->setToolTip(run.source == "sglang" || run.source == "vllm"
                               ? tr("captured from a %1 server%2 (no gate weights)")
                                     .arg(q(run.source), run.engine_version.empty() ? QString() : " " + q(run.engine_version))
                               : tr("traced by this engine on the %1 backend, %2 weights").arg(q(run.source), q(run.dtype)));
        runs_->setItem(r, 3, source);
        runs_->setItem(r, 4, table_cell(q(run.corpus_name), false));
        runs_->setItem(r, 5, table_cell(QString::number(run.n_documents), true));
        runs_->setItem(r, 6, table_cell(QString::number(run.n_tokens), true));
        runs_->setItem(r, 7, table_cell(run.mask_spec.empty() ? tr("none") : q(run.mask_spec), false));
        // "2025-01-31T12:00:00Z" → local "2025-01-31 13:00"; the exact time in the tooltip.
        const QDateTime started = QDateTime::fromString(q(run.started), Qt::ISODate);
        auto* when = table_cell(started.isValid() ? started.toLocalTime().toString("MM-dd hh:mm") : q(run.started), false);
        when->setToolTip(tr("started %1%2").arg(q(run.started), run.finished.empty() ? QString() : tr(", finished ") + q(run.finished)));
        runs_->setItem(r, 8, when);
    }
    block.unblock();
    // The run a trace has just written is shown once it is listed; otherwise the one shown stays.
    int64_t show = keep;
    for (int r = 0; select_after_trace_ && r < runs_->rowCount(); ++r)
        if (runs_->item(r, 0)->data(Qt::UserRole).toLongLong() == select_after_trace_) show = std::exchange(select_after_trace_, 0);
    if (show) selectRun(show);
    if (!selectedRun() && runs_->rowCount() > 0) runs_->selectRow(0);
    else if (const int64_t id = selectedRun()) emit runSelected(id);  // its numbers may have grown
    else if (keep) emit runSelected(0);  // the run shown is gone (deleted) and none is left
}

void RunsPanel::traceStarted() {
    trace_->setEnabled(false);
    cancel_->setEnabled(true);
    progress_->setValue(0);
    progress_text_->setText(tr("Reading and tokenizing the documents…"));
    progress_->show();
    progress_text_->show();
}

void RunsPanel::showProgress() {
    const TraceStatus& s = workbench_->traceStatus();
    progress_->setValue(s.tokens_total > 0 ? static_cast<int>(1000 * s.tokens_done / s.tokens_total) : 0);
    progress_text_->setText(tr("run %1 · %2 / %3 tokens · %4 / %5 documents · %6 tokens/s · ETA %7 · %8")
                                .arg(s.run_id)
                                .arg(s.tokens_done)
                                .arg(s.tokens_total)
                                .arg(s.documents_done)
                                .arg(s.documents_total)
                                .arg(s.tokens_per_second(), 0, 'f', 0)
                                .arg(duration(s.eta_seconds()))
                                .arg(q(s.domain)));
}

void RunsPanel::traceFinished(bool ok, const QString& summary) {
    select_after_trace_ = ok ? workbench_->lastTraceRun() : 0;
    trace_->setEnabled(workbench_->canTrace());
    cancel_->setEnabled(false);
    if (ok && workbench_->traceStatus().tokens_total > 0) progress_->setValue(
        static_cast<int>(1000 * workbench_->traceStatus().tokens_done / workbench_->traceStatus().tokens_total));
    progress_text_->setStyleSheet(ok ? QString() : QString("color: #b3261e"));
    progress_text_->setText(summary);
    progress_text_->show();
}

}  // namespace moe::ui
