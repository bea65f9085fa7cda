// The main window: assembles the docks (model, runs and corpora, token routing inspector,
// ablation, chat, log) around the heatmap
// view, wires their signals to the Workbench, and keeps menus, shortcuts, recent lists and
// the saved layout (QSettings). Nothing else lives here.
#pragma once

#include <QMainWindow>
#include <QString>

#include "engine/model.h"

class QLabel;

namespace moe::ui {

class Workbench;
class ModelPanel;
class RunsPanel;
class HeatmapView;
class LogPanel;
class RoutingInspector;
class AblationPanel;
class ChatPanel;
class ExpertDetailView;
class StoredAblationsView;
class RecentFiles;

struct StartOptions {
    QString model_dir;   // empty: none
    QString store_path;  // empty: none
    QString corpus_path;
    // Trace the corpus on start when the store holds no run yet (a newcomer sees heatmaps
    // without knowing what a trace is); later starts find the run and trace nothing.
    bool auto_trace = true;
    qint64 auto_trace_tokens = 2000;  // per domain
    Backend backend = Backend::cpu;   // where models run
};

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;
    void start(const StartOptions& options);

    Workbench* workbench() const { return workbench_; }
    ModelPanel* modelPanel() const { return model_panel_; }
    RunsPanel* runsPanel() const { return runs_panel_; }
    HeatmapView* heatmapView() const { return heatmap_; }
    LogPanel* logPanel() const { return log_; }
    RoutingInspector* inspector() const { return inspector_; }
    AblationPanel* ablationPanel() const { return ablation_; }
    ChatPanel* chatPanel() const { return chat_; }
    ExpertDetailView* expertDetail() const { return expert_detail_; }  // in its own window
    StoredAblationsView* storedAblations() const { return stored_ablations_; }  // in its own window

    static QString defaultStorePath();  // AppDataLocation/workbench.db

public slots:
    void chooseModel();
    void chooseStore();
    void chooseCorpus();
    void exportHeatmap();
    void exportStatsCsv();
    void exportTokensCsv();
    void exportAblationsCsv();
    void showStoredAblations();  // the window of the ablations kept in the store, read again

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    void buildMenus();
    QDockWidget* addDock(const QString& title, const QString& name, QWidget* widget, Qt::DockWidgetArea area,
                         bool scrollable = false);

    Workbench* workbench_;
    ModelPanel* model_panel_;
    RunsPanel* runs_panel_;
    HeatmapView* heatmap_;
    LogPanel* log_;
    RoutingInspector* inspector_;
    AblationPanel* ablation_;
    ChatPanel* chat_;
    ExpertDetailView* expert_detail_;
    StoredAblationsView* stored_ablations_;
    QLabel* mask_label_ = nullptr;
    RecentFiles* recent_models_ = nullptr;
    RecentFiles* recent_stores_ = nullptr;
    void maybeAutoTrace();
    QByteArray default_state_;
    StartOptions options_;
    bool auto_trace_pending_ = false;
};

}  // namespace moe::ui
