// MainWindow; see main_window.h.
#include "ui/main_window.h"

#include <algorithm>

#include <QAbstractSpinBox>
#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QFileDialog>
#include <QGuiApplication>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QScreen>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>

#include <QPainter>

#include "ui/ablation_panel.h"
#include "ui/chat_panel.h"
#include "ui/color_maps.h"
#include "ui/expert_detail.h"
#include "ui/heatmap_view.h"
#include "ui/log_panel.h"
#include "ui/model_panel.h"
#include "ui/plot_export.h"
#include "ui/recent_files.h"
#include "ui/routing_inspector.h"
#include "ui/runs_panel.h"
#include "ui/stored_ablations.h"
#include "ui/widget_helpers.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {

// In a panel that scrolls, the wheel scrolls the panel: a spin box or combo box under the
// pointer takes the wheel only once it has been clicked (has the focus). Otherwise scrolling
// down the ablation panel changed its token budget on the way.
class WheelOnlyWhenFocused : public QObject {
public:
    using QObject::QObject;

protected:
    bool eventFilter(QObject* o, QEvent* e) override {
        if (e->type() == QEvent::Wheel && !static_cast<QWidget*>(o)->hasFocus()) {
            e->ignore();  // not this widget's: QApplication passes it on to the scroll area
            return true;
        }
        return QObject::eventFilter(o, e);
    }
};

void guard_wheel(QWidget* panel) {
    auto* guard = new WheelOnlyWhenFocused(panel);
    auto take = [&](QWidget* w) {
        w->setFocusPolicy(Qt::StrongFocus);  // not Qt::WheelFocus: the wheel does not focus it
        w->installEventFilter(guard);
    };
    for (QAbstractSpinBox* w : panel->findChildren<QAbstractSpinBox*>()) take(w);
    for (QComboBox* w : panel->findChildren<QComboBox*>()) take(w);
}

// A dock's scrolling panel: it scrolls up and down, never sideways, so it is never made narrower
// than the panel's own minimum (it would be cut off at the right).
class PanelScroll : public QScrollArea {
public:
    using QScrollArea::QScrollArea;
    QSize minimumSizeHint() const override {
        QSize s = QScrollArea::minimumSizeHint();
        if (const QWidget* w = widget())
            s.setWidth(std::max(
                s.width(), w->minimumSizeHint().width() + verticalScrollBar()->sizeHint().width() + 2 * frameWidth()));
        return s;
    }
};

// The application icon: a small experts-by-layers heatmap in the viridis map, drawn here so
// that no image file needs to be installed.
QIcon app_icon() {
    QIcon icon;
    QCPColorGradient g = viridis_gradient();  // color() is not const
    for (int size : {16, 32, 64, 128, 256}) {
        QPixmap pm(size, size);
        pm.fill(Qt::transparent);
        QPainter p(&pm);
        p.setRenderHint(QPainter::Antialiasing, false);
        constexpr int n = 4;
        const double cell = size / static_cast<double>(n);
        for (int r = 0; r < n; ++r)
            for (int c = 0; c < n; ++c) {
                // A diagonal of "specialised" experts over a cooler background.
                const double v = (r == c) ? 0.95 : (std::abs(r - c) == 1 ? 0.45 : 0.12 + 0.05 * ((r * 3 + c) % 3));
                p.fillRect(QRectF(c * cell, r * cell, cell - std::max(1.0, size / 64.0), cell - std::max(1.0, size / 64.0)),
                           QColor::fromRgb(g.color(v, QCPRange(0, 1))));
            }
        icon.addPixmap(pm);
    }
    return icon;
}

}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent),
      workbench_(new Workbench(this)),
      model_panel_(new ModelPanel(workbench_, this)),
      runs_panel_(new RunsPanel(workbench_, this)),
      heatmap_(new HeatmapView(this)),
      log_(new LogPanel(this)),
      inspector_(new RoutingInspector(workbench_, this)),
      ablation_(new AblationPanel(workbench_, this)),
      chat_(new ChatPanel(workbench_, this)),
      expert_detail_(new ExpertDetailView(this)),
      stored_ablations_(new StoredAblationsView(this)) {
    setWindowIcon(app_icon());
    setObjectName("mainWindow");
    setCentralWidget(heatmap_);
    setDockNestingEnabled(true);
    // The left docks run the full height; the log sits under the heatmap only.
    setCorner(Qt::BottomLeftCorner, Qt::LeftDockWidgetArea);
    addDock(tr("Model"), "modelDock", model_panel_, Qt::LeftDockWidgetArea);
    addDock(tr("Runs and corpora"), "runsDock", runs_panel_, Qt::LeftDockWidgetArea, true);
    addDock(tr("Log"), "logDock", log_, Qt::BottomDockWidgetArea);
    QDockWidget* inspector_dock = addDock(tr("Token routing"), "inspectorDock", inspector_, Qt::RightDockWidgetArea);
    // The ablation panel shares the right side with the inspector, as a tab behind it.
    tabifyDockWidget(inspector_dock, addDock(tr("Ablation"), "ablationDock", ablation_, Qt::RightDockWidgetArea, true));
    tabifyDockWidget(inspector_dock, addDock(tr("Chat"), "chatDock", chat_, Qt::RightDockWidgetArea));
    inspector_dock->raise();
    buildMenus();
    statusBar()->showMessage(tr("Ready"));
    // The current mask, visible whatever dock is shown.
    mask_label_ = new QLabel(tr("Mask: none"), this);
    mask_label_->setObjectName("maskLabel");
    statusBar()->addPermanentWidget(mask_label_);

    connect(workbench_, &Workbench::logMessage, log_, &LogPanel::append);
    connect(workbench_, &Workbench::logMessage, this, [this](int level, const QString& m) {
        if (level > 0) statusBar()->showMessage(m.section('\n', 0, 0), 8000);
    });
    connect(model_panel_, &ModelPanel::openRequested, this, &MainWindow::chooseModel);
    connect(runs_panel_, &RunsPanel::chooseCorpusRequested, this, &MainWindow::chooseCorpus);
    connect(runs_panel_, &RunsPanel::runSelected, heatmap_, [this](qint64 id) { heatmap_->setRun(id); });
    connect(workbench_, &Workbench::runsChanged, heatmap_, [this] {
        QList<QPair<qint64, QString>> runs;
        for (const analysis::RunInfo& r : workbench_->runs())
            runs.append({r.run_id, tr("run %1 (%2%3)")
                                       .arg(r.run_id)
                                       .arg(QString::fromStdString(r.corpus_name))
                                       .arg(r.mask_spec.empty() ? QString() : ", mask " + QString::fromStdString(r.mask_spec))});
        heatmap_->setRuns(runs);
    });
    connect(runs_panel_, &RunsPanel::runSelected, inspector_, &RoutingInspector::setRun);
    connect(runs_panel_, &RunsPanel::runSelected, ablation_, &AblationPanel::setRun);
    connect(ablation_, &AblationPanel::maskChanged, this, [this](const QString& spec) {
        set_elided_text(mask_label_, spec.isEmpty() ? tr("Mask: none") : tr("Mask: %1").arg(spec), 480);
    });
    connect(ablation_, &AblationPanel::maskChanged, chat_, &ChatPanel::showMaskSpec);
    chat_->setMaskSource([this] { return ablation_->currentMask(); });
    runs_panel_->setMaskSource([this] { return ablation_->currentMask(); });
    connect(chat_, &ChatPanel::inspectRequested, this, [this, inspector_dock](const TokenRouting& r) {
        inspector_->showRouting(r);
        inspector_dock->raise();
    });
    connect(chat_, &ChatPanel::inspectTokenRequested, this, [this, inspector_dock](const TokenRouting& r, qint64 row) {
        inspector_->showToken(r, row);
        inspector_dock->raise();
    });
    connect(heatmap_, &HeatmapView::requestChanged, workbench_, &Workbench::requestHeatmap);
    // A click on a heatmap cell opens that expert's detail in a window of its own.
    expert_detail_->setWindowFlag(Qt::Tool);
    expert_detail_->setWindowTitle(tr("Expert detail"));
    expert_detail_->resize(560, 600);
    connect(heatmap_, &HeatmapView::expertClicked, workbench_, &Workbench::requestExpertDetail);
    connect(expert_detail_, &ExpertDetailView::minCountChanged, this, [this](qint64 n) {
        workbench_->setExpertDetailMinCount(n);
        const ExpertDetail& d = expert_detail_->detail();
        if (!d.domains.empty()) workbench_->requestExpertDetail(d.run_id, d.layer, d.expert);
    });
    connect(workbench_, &Workbench::expertDetailReady, this, [this](const ExpertDetail& d) {
        expert_detail_->showDetail(d);
        expert_detail_->setWindowTitle(tr("Expert %1 of layer %2 — run %3").arg(d.expert).arg(d.layer).arg(d.run_id));
        expert_detail_->show();
        expert_detail_->raise();
    });
    connect(workbench_, &Workbench::expertDetailFailed, this, [this](const QString& e) {
        expert_detail_->showError(e);
        expert_detail_->show();
    });
    connect(workbench_, &Workbench::exportFinished, this, [this](bool, const QString& m) {
        statusBar()->showMessage(m, 10000);
    });
    connect(workbench_, &Workbench::heatmapReady, heatmap_, &HeatmapView::showGrid);
    connect(workbench_, &Workbench::heatmapFailed, heatmap_, &HeatmapView::showError);
    connect(workbench_, &Workbench::modelOpened, this, [this] {
        recent_models_->add(QString::fromStdString(workbench_->modelSummary().dir));
        // The model's name; the platform adds the application's name after it ("default — MoE Workbench").
        setWindowTitle(QString::fromStdString(workbench_->modelSummary().dir).section('/', -1));
    });
    connect(workbench_, &Workbench::storeOpened, this, [this](const QString& path) { recent_stores_->add(path); });
    // The ablations kept in the store, in a window of their own; read again when it is opened,
    // when another store is opened and when an evaluation ends.
    stored_ablations_->setWindowFlag(Qt::Tool);
    stored_ablations_->setWindowTitle(tr("Stored ablations"));
    stored_ablations_->resize(900, 720);
    connect(ablation_, &AblationPanel::storedAblationsRequested, this, &MainWindow::showStoredAblations);
    connect(workbench_, &Workbench::storedAblationsReady, stored_ablations_, &StoredAblationsView::showAblations);
    connect(workbench_, &Workbench::storedAblationsFailed, stored_ablations_, &StoredAblationsView::showError);
    auto reread = [this] {
        if (stored_ablations_->isVisible()) workbench_->requestStoredAblations();
    };
    connect(workbench_, &Workbench::storeOpened, this, reread);
    connect(ablation_->jobs(), &AblationJobs::finished, this, reread);
    connect(stored_ablations_, &StoredAblationsView::exportRequested, this, &MainWindow::exportAblationsCsv);
    connect(stored_ablations_, &StoredAblationsView::useMaskRequested, this, [this](const QString& spec, const QString& mode) {
        ablation_->useMask(spec, mode);
        if (auto* dock = findChild<QDockWidget*>("ablationDock")) {
            dock->show();
            dock->raise();
        }
    });
    connect(workbench_, &Workbench::runDeleted, this, [this](bool, const QString& m) { statusBar()->showMessage(m, 10000); });
    connect(stored_ablations_, &StoredAblationsView::deleteRequested, workbench_, &Workbench::deleteAblation);
    connect(workbench_, &Workbench::ablationDeleted, this, [this, reread](bool ok, const QString& m) {
        statusBar()->showMessage(m, 10000);
        if (ok) reread();
        else stored_ablations_->showDeleteFailure(m);
    });
    connect(workbench_, &Workbench::traceFinished, this, [this](bool, const QString& summary) {
        statusBar()->showMessage(summary, 10000);
    });

    // The layout as built is the one "Reset layout" returns to; then the saved one, if any.
    // Dock sizes are laid out in the default window size, so that they are kept as given.
    QSize size(1400, 860);
    if (const QScreen* screen = QGuiApplication::primaryScreen())
        size = size.boundedTo(screen->availableGeometry().size());
    resize(size);
    resizeDocks({findChild<QDockWidget*>("modelDock"), findChild<QDockWidget*>("inspectorDock")}, {450, 400},
                Qt::Horizontal);
    resizeDocks({findChild<QDockWidget*>("logDock")}, {130}, Qt::Vertical);
    // On a short screen (a 1366 × 768 laptop) the model's facts and the runs and corpora share
    // the left column as tabs, the runs in front: stacked, the runs table fell below the fold.
    // On a screen too narrow for three columns (1024 pixels) the right column's docks join them
    // there, so that the window fits: the heatmap and one panel side by side.
    if (const QScreen* screen = QGuiApplication::primaryScreen()) {
        const QRect avail = screen->availableGeometry();
        auto* model_dock = findChild<QDockWidget*>("modelDock");
        auto* runs_dock = findChild<QDockWidget*>("runsDock");
        const bool narrow = minimumSizeHint().width() > avail.width();
        if (avail.height() < 900 || narrow) tabifyDockWidget(model_dock, runs_dock);
        if (narrow)
            for (const char* name : {"inspectorDock", "ablationDock", "chatDock"}) {
                auto* dock = findChild<QDockWidget*>(name);
                addDockWidget(Qt::LeftDockWidgetArea, dock);
                tabifyDockWidget(model_dock, dock);
            }
        if (avail.height() < 900 || narrow) runs_dock->raise();
        if (narrow) {
            layout()->activate();  // the two columns' minimum width, before the window is made to fit
            resize(avail.size());
        }
    }
    default_state_ = saveState();
    QSettings settings;
    restoreGeometry(settings.value("mainWindow/geometry").toByteArray());
    restoreState(settings.value("mainWindow/state").toByteArray());
    heatmap_->setAxes(static_cast<HeatmapAxes>(
        settings.value("heatmap/axes", static_cast<int>(HeatmapAxes::experts_by_domains)).toInt()));
    heatmap_->setMeasure(static_cast<HeatmapMeasure>(settings.value("heatmap/measure", 0).toInt()));
}

MainWindow::~MainWindow() = default;

QString MainWindow::defaultStorePath() {
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/workbench.db";
}

QDockWidget* MainWindow::addDock(const QString& title, const QString& name, QWidget* widget, Qt::DockWidgetArea area,
                                 bool scrollable) {
    auto* dock = new QDockWidget(title, this);
    dock->setObjectName(name);
    if (scrollable) {
        // A tall panel scrolls rather than squeezes when the window is small (a laptop screen).
        auto* scroll = new PanelScroll(dock);
        guard_wheel(widget);
        scroll->setWidget(widget);
        scroll->setWidgetResizable(true);
        scroll->setFrameShape(QFrame::NoFrame);
        scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
        dock->setWidget(scroll);
    } else {
        dock->setWidget(widget);
    }
    dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable | QDockWidget::DockWidgetClosable);
    addDockWidget(area, dock);
    return dock;
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("Open &model…"), QKeySequence::Open, this, &MainWindow::chooseModel);
    recent_models_ = new RecentFiles("recent/models", file->addMenu(tr("Recent models")), 8, this);
    file->addSeparator();
    file->addAction(tr("Open routing &store…"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), this,
                    &MainWindow::chooseStore);
    recent_stores_ = new RecentFiles("recent/stores", file->addMenu(tr("Recent stores")), 8, this);
    file->addAction(tr("Open &corpus…"), QKeySequence(Qt::CTRL | Qt::Key_K), this, &MainWindow::chooseCorpus);
    file->addSeparator();
    file->addAction(tr("&Export heatmap…"), QKeySequence(Qt::CTRL | Qt::Key_E), this, &MainWindow::exportHeatmap);
    file->addAction(tr("Export &statistics CSV…"), this, &MainWindow::exportStatsCsv);
    file->addAction(tr("Export &per-token CSV…"), this, &MainWindow::exportTokensCsv);
    file->addAction(tr("Export stored &ablations CSV…"), this, &MainWindow::exportAblationsCsv);
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
    connect(recent_models_, &RecentFiles::chosen, workbench_, &Workbench::openModel);
    connect(recent_stores_, &RecentFiles::chosen, workbench_, &Workbench::openStore);

    QMenu* trace = menuBar()->addMenu(tr("&Trace"));
    trace->addAction(tr("&Start trace of the checked domains"), QKeySequence(Qt::CTRL | Qt::Key_T), runs_panel_,
                     &RunsPanel::startTrace);
    trace->addAction(tr("&Cancel trace"), QKeySequence(Qt::CTRL | Qt::Key_Period), workbench_, &Workbench::cancelTrace);
    trace->addAction(tr("&Refresh runs"), QKeySequence::Refresh, workbench_, &Workbench::refreshRuns);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(tr("Experts × &layers"), QKeySequence(Qt::CTRL | Qt::Key_1), this,
                    [this] { heatmap_->setAxes(HeatmapAxes::experts_by_layers); });
    view->addAction(tr("Experts × &domains"), QKeySequence(Qt::CTRL | Qt::Key_2), this,
                    [this] { heatmap_->setAxes(HeatmapAxes::experts_by_domains); });
    view->addSeparator();
    for (QDockWidget* dock : findChildren<QDockWidget*>()) view->addAction(dock->toggleViewAction());
    view->addAction(tr("Stored &ablations…"), this, &MainWindow::showStoredAblations);
    view->addSeparator();
    view->addAction(tr("&Reset layout"), this, [this] { restoreState(default_state_); });

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About"), this, [this] {
        QMessageBox::about(this, tr("About MoE Workbench"),
                           tr("<b>MoE Workbench</b><br>Which experts a Mixture-of-Experts model routes each token to, "
                              "by domain and layer.<br>Traces are stored in a SQLite routing store; the same jobs "
                              "are available from the <tt>moewb</tt> command line."));
    });
}

void MainWindow::start(const StartOptions& options) {
    options_ = options;
    auto_trace_pending_ = options.auto_trace;
    if (auto_trace_pending_) {
        for (auto signal : {&Workbench::modelOpened, &Workbench::corpusOpened, &Workbench::runsChanged})
            connect(workbench_, signal, this, &MainWindow::maybeAutoTrace);
    }
    if (!options.store_path.isEmpty()) workbench_->openStore(options.store_path);
    if (!options.corpus_path.isEmpty()) workbench_->openCorpus(options.corpus_path);
    workbench_->setBackend(options.backend);
    if (!options.model_dir.isEmpty()) workbench_->openModel(options.model_dir);
}

void MainWindow::maybeAutoTrace() {
    // Once, when model, corpus and store are all there; not when the model cannot trace text.
    if (!auto_trace_pending_ || !workbench_->hasModel() || !workbench_->corpus() || !workbench_->hasStore()) return;
    auto_trace_pending_ = false;
    if (!workbench_->runs().empty() || workbench_->traceRunning()) return;
    if (!workbench_->canTrace()) {
        log_->append(1, tr("not tracing the corpus on start: %1")
                            .arg(QString::fromStdString(workbench_->modelSummary().tokenizer_problem)));
        return;
    }
    log_->append(0, tr("the store has no runs yet: tracing %1 tokens of each domain").arg(options_.auto_trace_tokens));
    runs_panel_->setTokenBudget(options_.auto_trace_tokens);
    workbench_->startTrace({}, options_.auto_trace_tokens);
}

void MainWindow::chooseModel() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a model directory"),
                                                          QString::fromStdString(workbench_->modelSummary().dir));
    if (!dir.isEmpty()) workbench_->openModel(dir);
}

void MainWindow::chooseStore() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Open or create a routing store"), workbench_->storePath(),
                                                      tr("Routing stores (*.db *.sqlite);;All files (*)"), nullptr,
                                                      QFileDialog::DontConfirmOverwrite);
    if (!path.isEmpty()) workbench_->openStore(path);
}

void MainWindow::chooseCorpus() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a corpus directory"));
    if (!dir.isEmpty()) workbench_->openCorpus(dir);
}

void MainWindow::exportHeatmap() {
    if (!heatmap_->grid()) {
        statusBar()->showMessage(tr("No heatmap to export: select a run first"), 8000);
        return;
    }
    const QString path = QFileDialog::getSaveFileName(this, tr("Export the heatmap"), QString(),
                                                      plot_file_filter());
    if (path.isEmpty()) return;
    if (heatmap_->exportImage(path)) log_->append(0, tr("heatmap written to %1").arg(path));
    else log_->append(2, tr("could not write the heatmap to %1 (give it a .png, .svg, .pdf or .jpg name)").arg(path));
}

void MainWindow::exportStatsCsv() {
    const int64_t run = runs_panel_->selectedRun();
    const QString path = QFileDialog::getSaveFileName(
        this, run ? tr("Export the statistics of run %1").arg(run) : tr("Export the statistics of every run"),
        run ? QString("stats-run%1.csv").arg(run) : QString("stats.csv"), tr("CSV (*.csv)"));
    if (!path.isEmpty()) workbench_->exportStatsCsv(path, run);
}

void MainWindow::exportTokensCsv() {
    const int64_t run = runs_panel_->selectedRun();
    if (!run) {
        statusBar()->showMessage(tr("Select a run to export its per-token routing"), 8000);
        return;
    }
    const QString path = QFileDialog::getSaveFileName(this, tr("Export the per-token routing of run %1").arg(run),
                                                      QString("tokens-run%1.csv").arg(run), tr("CSV (*.csv)"));
    if (!path.isEmpty()) workbench_->exportTokensCsv(path, run);
}

void MainWindow::exportAblationsCsv() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export the ablations kept in the store"),
                                                      QString("ablations.csv"), tr("CSV (*.csv)"));
    if (!path.isEmpty()) workbench_->exportAblationsCsv(path);
}

void MainWindow::showStoredAblations() {
    stored_ablations_->show();
    stored_ablations_->raise();
    workbench_->requestStoredAblations();
}

void MainWindow::closeEvent(QCloseEvent* event) {
    QSettings settings;
    settings.setValue("mainWindow/geometry", saveGeometry());
    settings.setValue("mainWindow/state", saveState());
    settings.setValue("heatmap/axes", static_cast<int>(heatmap_->currentRequest().axes));
    settings.setValue("heatmap/measure", static_cast<int>(heatmap_->currentRequest().measure));
    workbench_->cancelTrace();
    QMainWindow::closeEvent(event);
}

}  // namespace moe::ui
