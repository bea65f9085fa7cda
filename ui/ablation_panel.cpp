// AblationPanel; see ablation_panel.h.
#include "ui/ablation_panel.h"
#include "ui/runs_panel.h"

#include <qcustomplot.h>

#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QSlider>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QSaveFile>
#include <QVBoxLayout>
#include <map>

#include "analysis/csv_exports.h"
#include "engine/error.h"
#include "engine/model.h"
#include "ui/expert_grid.h"
#include "ui/plot_export.h"
#include "ui/sweep_plot.h"
#include "ui/widget_helpers.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace an = moe::analysis;

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

AblationPanel::AblationPanel(Workbench* workbench, QWidget* parent)
    : QWidget(parent), workbench_(workbench), jobs_(new AblationJobs(workbench, this)), spec_(new QLineEdit(this)),
      mask_error_(error_label(this, "maskError")), mode_(new QComboBox(this)), n_(new QSpinBox(this)),
      seed_(new QSpinBox(this)), run_label_(new QLabel(this)), grid_(new ExpertGrid(this)), cell_size_(new QSlider(Qt::Horizontal, this)),
      domains_(new QListWidget(this)), budget_(new QSpinBox(this)), store_(new QCheckBox(tr("Keep in the store"), this)),
      evaluate_(new QPushButton(tr("Evaluate"), this)), cancel_(new QPushButton(tr("Cancel"), this)),
      progress_(new QProgressBar(this)), status_(new QLabel(this)), results_(new QTableWidget(this)),
      chart_(new QCustomPlot(this)), fractions_(new QLineEdit(QStringLiteral("0.0625,0.125,0.25"), this)),
      sweep_(new QPushButton(tr("Sweep"), this)), sweep_chart_(new QCustomPlot(this)),
      export_csv_(new QPushButton(tr("Export CSV…"), this)) {
    // --- the mask ---
    auto* mask_box = new QGroupBox(tr("Mask"), this);
    spec_->setObjectName("maskSpec");
    spec_->setPlaceholderText(tr("nothing switched off — click experts below, or type a SPEC (e.g. *:shared;L1:3,7)"));
    spec_->setToolTip(tr("The mask as the CLI writes it (moewb --mask, docs/masks.md); edit and press Enter"));
    mode_->setObjectName("maskMode");
    mode_->addItem(tr("reroute"), static_cast<int>(MaskMode::reroute));
    mode_->addItem(tr("drop"), static_cast<int>(MaskMode::drop));
    mode_->setToolTip(tr("reroute: a switched-off expert cannot be selected, top-k is taken over the rest\n"
                         "drop: selected as usual, its output discarded"));
    auto* shared_off = new QPushButton(tr("Shared off"), mask_box);
    shared_off->setObjectName("sharedOff");
    shared_off->setToolTip(tr("Switch the shared experts off in every MoE layer"));
    auto* clear = new QPushButton(tr("Clear"), mask_box);
    clear->setObjectName("clearMask");
    n_->setObjectName("quickN");
    n_->setRange(1, 4096);
    n_->setValue(2);
    n_->setPrefix("N = ");
    auto* top = new QPushButton(tr("Top-N"), mask_box);
    top->setObjectName("topN");
    top->setToolTip(tr("Per layer, the N experts the selected run selected most"));
    auto* bottom = new QPushButton(tr("Bottom-N"), mask_box);
    bottom->setObjectName("bottomN");
    bottom->setToolTip(tr("Per layer, the N experts the selected run selected least"));
    auto* random = new QPushButton(tr("Random N"), mask_box);
    random->setObjectName("randomN");
    random->setToolTip(tr("Per layer, N experts chosen at random with the seed"));
    seed_->setObjectName("quickSeed");
    seed_->setRange(0, 1'000'000);
    seed_->setPrefix(tr("seed "));
    run_label_->setObjectName("quickRun");
    run_label_->setWordWrap(true);
    auto* save = new QPushButton(tr("Save…"), mask_box);
    auto* load = new QPushButton(tr("Load…"), mask_box);
    save->setToolTip(tr("Save the mask as JSON"));
    load->setToolTip(tr("Load a mask saved as JSON"));

    auto* spec_row = new QHBoxLayout;
    spec_->setMinimumWidth(120);
    spec_row->addWidget(spec_, 1);
    spec_row->addWidget(mode_);
    auto* quick_row1 = new QHBoxLayout;
    quick_row1->addWidget(shared_off);
    quick_row1->addStretch(1);
    quick_row1->addWidget(save);
    quick_row1->addWidget(load);
    auto* quick_row2 = new QHBoxLayout;
    quick_row2->addWidget(n_);
    quick_row2->addWidget(top);
    quick_row2->addWidget(bottom);
    quick_row2->addStretch(1);
    auto* quick_row3 = new QHBoxLayout;
    quick_row3->addWidget(random);
    quick_row3->addWidget(seed_);
    quick_row3->addStretch(1);
    quick_row3->addWidget(clear);
    auto* mask_layout = new QVBoxLayout(mask_box);
    mask_layout->addLayout(spec_row);
    mask_layout->addWidget(mask_error_);
    mask_layout->addLayout(quick_row1);
    mask_layout->addLayout(quick_row2);
    mask_layout->addLayout(quick_row3);
    mask_layout->addWidget(run_label_);
    // The cells' size: small enough, a model of hundreds of experts per layer fits the dock.
    cell_size_->setObjectName("gridCellSize");
    cell_size_->setRange(ExpertGrid::kMinCell, ExpertGrid::kMaxCell);
    cell_size_->setValue(grid_->cellSize());
    cell_size_->setToolTip(tr("The size of the grid's cells (also Ctrl + wheel over the grid); below %1 px the "
                              "cells show colours only, their tooltips which expert they are")
                               .arg(ExpertGrid::kLabelledCell));
    connect(cell_size_, &QSlider::valueChanged, grid_, &ExpertGrid::setCellSize);
    connect(grid_, &ExpertGrid::cellSizeChanged, cell_size_, &QSlider::setValue);
    auto* cell_row = new QHBoxLayout;
    cell_row->addWidget(new QLabel(tr("Cells:"), mask_box));
    cell_row->addWidget(cell_size_, 1);
    mask_layout->addLayout(cell_row);
    mask_layout->addWidget(grid_, 1);

    // --- the evaluation ---
    auto* eval_box = new QGroupBox(tr("Evaluate against the published model"), this);
    domains_->setObjectName("ablationDomains");
    domains_->setFlow(QListView::LeftToRight);
    domains_->setWrapping(true);
    domains_->setMaximumHeight(fontMetrics().height() * 3 + 8);
    budget_->setObjectName("ablationBudget");
    setup_token_budget(budget_, 500, 1000);
    budget_->setToolTip(tr("Tokens per domain (as a trace counts them); 0: all"));
    store_->setObjectName("ablationStore");
    store_->setToolTip(tr("Record the baseline and the ablation in the routing store (moewb ablate --db)"));
    evaluate_->setObjectName("evaluate");
    cancel_->setObjectName("cancelEvaluation");
    cancel_->setEnabled(false);
    progress_->setObjectName("ablationProgress");
    progress_->setRange(0, 1000);
    progress_->setTextVisible(false);
    status_->setObjectName("ablationStatus");
    status_->setWordWrap(true);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    // Short rows: the panel fits a narrow dock.
    auto* eval_row = new QHBoxLayout;
    eval_row->addWidget(new QLabel(tr("Per domain:"), eval_box));
    eval_row->addWidget(budget_, 1);
    auto* eval_row2 = new QHBoxLayout;
    eval_row2->addWidget(store_);
    eval_row2->addStretch(1);
    eval_row2->addWidget(evaluate_);
    eval_row2->addWidget(cancel_);
    auto* eval_layout = new QVBoxLayout(eval_box);
    eval_layout->addWidget(domains_);
    eval_layout->addLayout(eval_row);
    eval_layout->addLayout(eval_row2);
    fractions_->setObjectName("sweepFractions");
    fractions_->setToolTip(tr("Fractions of the routed experts switched off in every MoE layer (comma-separated)"));
    sweep_->setObjectName("sweep");
    sweep_->setToolTip(tr("The top-routed sweep of the selected run: at each fraction the most selected experts "
                          "off, against the least selected and random ones (moewb ablate --sweep top-routed)"));
    auto* sweep_row = new QHBoxLayout;
    sweep_row->addWidget(new QLabel(tr("Fractions:"), eval_box));
    sweep_row->addWidget(fractions_, 1);
    sweep_row->addWidget(sweep_);
    eval_layout->addLayout(sweep_row);
    eval_layout->addWidget(progress_);
    eval_layout->addWidget(status_);

    // --- the results ---
    auto* results_box = new QGroupBox(tr("Results"), this);
    results_->setObjectName("ablationResults");
    results_->setColumnCount(8);
    results_->setHorizontalHeaderLabels({tr("Domain"), tr("Δloss"), tr("PPL ratio"), tr("KL"), tr("Top-1 agree"),
                                         tr("Baseline loss"), tr("Ablated loss"), tr("Tokens")});
    results_->horizontalHeaderItem(1)->setToolTip(tr("ablated − baseline mean loss, nats per predicted token"));
    results_->horizontalHeaderItem(3)->setToolTip(tr("mean KL(baseline ‖ ablated) per token, nats"));
    results_->horizontalHeaderItem(4)->setToolTip(tr("share of positions where the ablated model's most likely next token is the baseline's"));
    results_->verticalHeader()->hide();
    results_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    results_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    results_->verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 6);
    results_->setMinimumHeight(results_->horizontalHeader()->sizeHint().height() + 4 * (fontMetrics().height() + 6));
    chart_->setObjectName("ablationChart");
    chart_->setMinimumHeight(170);
    chart_->yAxis->setLabel(tr("Δloss (nats)"));
    bars_ = add_category_bars(chart_, QColor("#d6604d"));
    auto* results_layout = new QVBoxLayout(results_box);
    results_layout->addWidget(results_);
    results_layout->addWidget(chart_, 1);
    sweep_chart_->setObjectName("sweepChart");
    sweep_chart_->setMinimumHeight(170);
    setup_sweep_plot(sweep_chart_, tr("fraction of routed experts switched off"));
    sweep_chart_->hide();
    results_layout->addWidget(sweep_chart_, 1);
    auto* export_chart = new QPushButton(tr("Export chart…"), this);
    export_chart->setObjectName("exportAblationChart");
    export_chart->setToolTip(tr("Write the chart shown above as PNG, SVG, PDF or JPEG"));
    export_csv_->setObjectName("exportAblationCsv");
    export_csv_->setToolTip(tr("Write the scores per condition and domain as CSV, the columns of moewb ablate --csv"));
    export_csv_->setEnabled(false);
    connect(export_csv_, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export the scores as CSV"), QString(),
                                                          tr("CSV files (*.csv);;All files (*)"));
        if (!path.isEmpty()) exportCsv(path);
    });
    auto* stored = new QPushButton(tr("Stored…"), this);
    stored->setObjectName("showStoredAblations");
    stored->setToolTip(tr("The ablations kept in the store, with their scores; their masks can be used again"));
    connect(stored, &QPushButton::clicked, this, &AblationPanel::storedAblationsRequested);
    auto* export_row = new QHBoxLayout;
    export_row->addWidget(stored);
    export_row->addStretch(1);
    export_row->addWidget(export_csv_);
    export_row->addWidget(export_chart);
    results_layout->addLayout(export_row);
    connect(export_chart, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export chart"), QString(), plot_file_filter());
        if (path.isEmpty()) return;
        const bool ok = exportChart(path);
        status_->setStyleSheet(ok ? QString() : QString("color: #b3261e"));
        status_->setText(ok ? tr("Chart written to %1").arg(path)
                            : tr("Could not write the chart to %1 (give it a .png, .svg, .pdf or .jpg name)").arg(path));
    });

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(mask_box);
    layout->addWidget(eval_box);
    layout->addWidget(results_box, 2);

    connect(spec_, &QLineEdit::returnPressed, this, [this] { setSpec(spec_->text()); });
    connect(mode_, &QComboBox::currentIndexChanged, this, [this] {
        mask_.set_mode(static_cast<MaskMode>(mode_->currentData().toInt()));
        maskEdited();
    });
    connect(grid_, &ExpertGrid::cellToggled, this, &AblationPanel::toggle);
    connect(shared_off, &QPushButton::clicked, this, [this] {
        mask_.set_all_shared_off(true);
        maskEdited();
    });
    connect(clear, &QPushButton::clicked, this, [this] {
        mask_.clear();
        maskEdited();
    });
    connect(top, &QPushButton::clicked, this, [this] { quick(QuickMask::top_selected); });
    connect(bottom, &QPushButton::clicked, this, [this] { quick(QuickMask::least_selected); });
    connect(random, &QPushButton::clicked, this, [this] { quick(QuickMask::random); });
    connect(save, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Save the mask"), "mask.json", tr("JSON (*.json)"));
        if (!path.isEmpty()) saveMask(path);
    });
    connect(load, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Load a mask"), QString(), tr("JSON (*.json);;All files (*)"));
        if (!path.isEmpty()) loadMask(path);
    });
    connect(evaluate_, &QPushButton::clicked, this, &AblationPanel::evaluate);
    connect(cancel_, &QPushButton::clicked, jobs_, &AblationJobs::cancel);
    connect(jobs_, &AblationJobs::quickMaskReady, this, [this](const ExpertMask& m, const QString& what) {
        if (!workbench_->hasModelConfig()) return;
        const MaskState picked = MaskState::from_mask(m, *workbench_->modelConfig());
        for (size_t r = 0; r < mask_.layers().size(); ++r)
            for (int64_t e = 0; e < mask_.n_experts(); ++e) mask_.set_expert_off(r, e, picked.expert_off(r, e));
        maskEdited();
        status_->setStyleSheet(QString());
        status_->setText(tr("Routed experts off: %1.").arg(what));
    });
    connect(jobs_, &AblationJobs::quickMaskFailed, this, &AblationPanel::showMaskError);
    connect(sweep_, &QPushButton::clicked, this, &AblationPanel::sweep);
    connect(jobs_, &AblationJobs::started, this, [this] {
        evaluate_->setEnabled(false);
        sweep_->setEnabled(false);
        cancel_->setEnabled(true);
        progress_->setValue(0);
        status_->setStyleSheet(QString());
        status_->setText(tr("Tokenizing the domains…"));
    });
    connect(jobs_, &AblationJobs::progressed, this, [this] {
        const an::AblationProgress& p = jobs_->progress();
        progress_->setValue(p.tokens_total > 0 ? static_cast<int>(1000 * p.tokens_done / p.tokens_total) : 0);
        status_->setText(tr("%1 / %2 forward tokens (baseline and mask) · %3 · %4 s")
                             .arg(p.tokens_done)
                             .arg(p.tokens_total)
                             .arg(q(p.domain))
                             .arg(p.seconds, 0, 'f', 1));
    });
    connect(jobs_, &AblationJobs::finished, this, [this](bool ok, const QString& summary) {
        enableEvaluation();
        cancel_->setEnabled(false);
        status_->setStyleSheet(ok ? QString() : QString("color: #b3261e"));
        status_->setText(summary);
        if (ok) {
            // A cancelled run's partial scores are shown, not exported.
            shown_ = jobs_->result();
            if (shown_->conditions.size() > 1) showSweep();
            else showResult();
            if (shown_->stopped) shown_.reset();
        }
        export_csv_->setEnabled(shown_.has_value());
    });
    connect(workbench_, &Workbench::modelOpened, this, &AblationPanel::resetForModel);
    connect(workbench_, &Workbench::corpusOpened, this, &AblationPanel::showCorpus);
    setRun(0);
}

void AblationPanel::resetForModel() {
    mask_ = MaskState(*workbench_->modelConfig());
    mask_.set_mode(static_cast<MaskMode>(mode_->currentData().toInt()));
    n_->setMaximum(static_cast<int>(std::max<int64_t>(1, mask_.n_experts() - 1)));
    maskEdited();
    enableEvaluation();
}

// A directory with config and tokenizer only (a model served elsewhere) takes masks — built,
// saved, picked from a captured run — but has nothing to evaluate them with.
void AblationPanel::enableEvaluation() {
    const bool weights = workbench_->hasModel() || !workbench_->hasModelConfig();
    const QString why = weights ? QString() : tr("This model directory has no weights: a mask can be built and saved "
                                                 "here, and evaluated where the weights are");
    for (QPushButton* b : {evaluate_, sweep_}) {
        b->setEnabled(weights);
        b->setToolTip(why);
    }
    if (!weights) {
        status_->setStyleSheet(QString());
        status_->setText(why + ".");
    }
}

void AblationPanel::showCorpus() {
    domains_->clear();
    for (const CorpusDomainSummary& d : workbench_->corpus()->domains) {
        auto* it = new QListWidgetItem(q(d.name), domains_);
        it->setFlags(Qt::ItemIsUserCheckable | Qt::ItemIsEnabled);
        it->setCheckState(Qt::Checked);
    }
}

void AblationPanel::setDomainsChecked(const QStringList& domains) {
    for (int i = 0; i < domains_->count(); ++i)
        domains_->item(i)->setCheckState(domains.contains(domains_->item(i)->text()) ? Qt::Checked : Qt::Unchecked);
}

void AblationPanel::setTokenBudget(qint64 tokens) { budget_->setValue(static_cast<int>(tokens)); }

void AblationPanel::setRun(qint64 run_id) {
    run_id_ = run_id;
    run_label_->setText(run_id ? tr("Top-N and bottom-N from run %1 (selected in the runs panel)").arg(run_id)
                               : tr("Top-N and bottom-N need a run: select one in the runs panel"));
}

void AblationPanel::showMaskError(const QString& error) {
    mask_error_->setText(error);
    mask_error_->setVisible(!error.isEmpty());
}

std::optional<ExpertMask> AblationPanel::currentMask() const {
    if (!workbench_->hasModelConfig() || mask_.empty()) return std::nullopt;
    try {
        return mask_.to_mask(*workbench_->modelConfig());
    } catch (const Error&) {
        return std::nullopt;
    }
}

void AblationPanel::maskEdited() {
    grid_->showMask(mask_);
    const QString spec = q(mask_.spec());
    spec_->setText(spec);
    QString error;
    if (workbench_->hasModelConfig() && !mask_.empty()) {
        try {
            mask_.to_mask(*workbench_->modelConfig());
        } catch (const Error& e) {
            error = QString::fromUtf8(e.what());
        }
    }
    showMaskError(error);
    emit maskChanged(spec);
}

void AblationPanel::useMask(const QString& spec, const QString& mode) {
    {
        const QSignalBlocker quiet(mode_);
        mode_->setCurrentIndex(std::max(0, mode_->findData(static_cast<int>(parse_mask_mode(mode.toStdString())))));
    }
    setSpec(spec);
}

void AblationPanel::setSpec(const QString& spec) {
    if (!workbench_->hasModelConfig()) {
        showMaskError(tr("open a model first"));
        return;
    }
    try {
        mask_ = MaskState::from_spec(spec.trimmed().toStdString(), static_cast<MaskMode>(mode_->currentData().toInt()),
                                     *workbench_->modelConfig());
        maskEdited();
    } catch (const Error& e) {
        spec_->setText(spec);
        showMaskError(QString::fromUtf8(e.what()));
    }
}

void AblationPanel::toggle(int row, int column) {
    if (row < 0 || static_cast<size_t>(row) >= mask_.layers().size()) return;
    if (column == 0) mask_.set_shared_off(static_cast<size_t>(row), !mask_.shared_off(static_cast<size_t>(row)));
    else if (column - 1 < mask_.n_experts())
        mask_.set_expert_off(static_cast<size_t>(row), column - 1, !mask_.expert_off(static_cast<size_t>(row), column - 1));
    maskEdited();
}

void AblationPanel::quick(QuickMask kind) {
    showMaskError({});
    jobs_->requestQuickMask(kind, n_->value(), run_id_, static_cast<quint64>(seed_->value()),
                            static_cast<MaskMode>(mode_->currentData().toInt()));
}

void AblationPanel::evaluate() {
    QStringList domains;
    for (int i = 0; i < domains_->count(); ++i)
        if (domains_->item(i)->checkState() == Qt::Checked) domains << domains_->item(i)->text();
    const std::optional<ExpertMask> mask = currentMask();
    if (!mask) {
        status_->setStyleSheet("color: #b3261e");
        status_->setText(mask_.empty() ? tr("The mask switches nothing off: toggle experts first.")
                                       : tr("The mask does not resolve: %1").arg(maskError()));
        return;
    }
    if (domains.isEmpty()) {
        status_->setStyleSheet("color: #b3261e");
        status_->setText(tr("Check at least one domain."));
        return;
    }
    jobs_->start(*mask, domains, budget_->value(), store_->isChecked());
}

bool AblationPanel::exportCsv(const QString& path) {
    if (!shown_) return false;
    try {
        an::CsvWriter w(path.toStdString());
        const int64_t rows = an::write_ablation_csv(w, *shown_);
        status_->setStyleSheet(QString());
        status_->setText(tr("%1 rows written to %2").arg(rows).arg(path));
        return true;
    } catch (const std::exception& e) {
        status_->setStyleSheet("color: #b3261e");
        status_->setText(tr("Could not write the scores: %1").arg(QString::fromUtf8(e.what())));
        return false;
    }
}

bool AblationPanel::exportChart(const QString& path) {
    return save_plot(sweep_chart_->isVisibleTo(this) ? sweep_chart_ : chart_, path, 1000);
}

void AblationPanel::sweep() {
    QStringList domains;
    for (int i = 0; i < domains_->count(); ++i)
        if (domains_->item(i)->checkState() == Qt::Checked) domains << domains_->item(i)->text();
    QList<double> fractions;
    for (const QString& part : fractions_->text().split(',', Qt::SkipEmptyParts)) {
        bool ok = false;
        const double f = part.trimmed().toDouble(&ok);
        if (!ok || !(f > 0 && f < 1)) {
            status_->setStyleSheet("color: #b3261e");
            status_->setText(tr("'%1' is not a fraction between 0 and 1.").arg(part.trimmed()));
            return;
        }
        fractions << f;
    }
    jobs_->startSweep(run_id_, fractions, static_cast<quint64>(seed_->value()), static_cast<MaskMode>(mode_->currentData().toInt()),
                      domains, budget_->value(), store_->isChecked());
}

void AblationPanel::showSweep() {
    // One table row per condition (its all-domain scores), and one line per kind of condition.
    const an::AblationResult& r = *jobs_->result();
    results_->setRowCount(static_cast<int>(r.conditions.size()));
    std::vector<SweepPoint> points;
    for (int i = 0; i < static_cast<int>(r.conditions.size()); ++i) {
        const an::AblationConditionResult& c = r.conditions[static_cast<size_t>(i)];
        const std::string kind = c.condition.control.empty() ? "most routed" : c.condition.control;
        const double f = c.condition.value.value_or(0.0);
        const an::AblationScore& s = c.all;
        results_->setItem(i, 0, table_cell(QString("%1, %2").arg(f, 0, 'g', 4).arg(q(kind)), false));
        results_->item(i, 0)->setToolTip(q(c.condition.mask.spec()));
        fill_score_cells(results_, i, 1, s);
        points.push_back({kind, f, s.delta_loss()});
    }
    plot_sweep(sweep_chart_, points);
    chart_->hide();
    sweep_chart_->show();
    sweep_chart_->replot();
}

void AblationPanel::showResult() {
    sweep_chart_->hide();
    chart_->show();
    const an::AblationResult& r = *jobs_->result();
    const an::AblationConditionResult& c = r.conditions.front();
    std::vector<an::AblationScore> rows = c.domains;
    rows.push_back(c.all);
    results_->setRowCount(static_cast<int>(rows.size()));
    QVector<double> keys, values;
    auto ticks = QSharedPointer<QCPAxisTickerText>::create();
    for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
        const an::AblationScore& s = rows[static_cast<size_t>(i)];
        results_->setItem(i, 0, table_cell(q(s.domain), false));
        fill_score_cells(results_, i, 1, s);
        if (i + 1 < static_cast<int>(rows.size())) {
            keys << i;
            values << s.delta_loss();
            ticks->addTick(i, q(s.domain));
        }
    }
    bars_->setData(keys, values);
    chart_->xAxis->setTicker(ticks);
    chart_->xAxis->setRange(-0.6, static_cast<double>(keys.size()) - 0.4);
    double lo = 0, hi = 0;
    for (double v : values) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    const double pad = std::max(1e-6, 0.1 * (hi - lo));
    chart_->yAxis->setRange(lo - (lo < 0 ? pad : 0), hi + pad);
    chart_->replot();
}

bool AblationPanel::saveMask(const QString& path) {
    QSaveFile f(path);
    const std::string json = mask_.to_json(workbench_->modelSummary().dir.empty()
                                               ? std::string()
                                               : QFileInfo(q(workbench_->modelSummary().dir)).fileName().toStdString());
    if (!f.open(QIODevice::WriteOnly) || f.write(json.data(), static_cast<qint64>(json.size())) < 0 || !f.commit()) {
        showMaskError(tr("could not write %1: %2").arg(path, f.errorString()));
        return false;
    }
    status_->setStyleSheet(QString());
    status_->setText(tr("Mask saved to %1").arg(path));
    return true;
}

bool AblationPanel::loadMask(const QString& path) {
    if (!workbench_->hasModelConfig()) {
        showMaskError(tr("open a model first"));
        return false;
    }
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        showMaskError(tr("could not read %1: %2").arg(path, f.errorString()));
        return false;
    }
    try {
        mask_ = MaskState::from_json(f.readAll().toStdString(), *workbench_->modelConfig(), path.toStdString());
    } catch (const Error& e) {
        showMaskError(QString::fromUtf8(e.what()));
        return false;
    }
    {
        QSignalBlocker block(mode_);
        mode_->setCurrentIndex(mode_->findData(static_cast<int>(mask_.mode())));
    }
    maskEdited();
    return true;
}

}  // namespace moe::ui
