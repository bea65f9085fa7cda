// Workbench: the GUI's handle on one model, one routing store and one corpus, and the jobs
// that run on them. Every engine and store call runs on a worker thread (ui/job.h); results
// and errors come back as signals on the GUI thread, so panels only present. Threads: the
// model and tokenizer are immutable once loaded and shared (shared_ptr) with running jobs;
// each job opens its own connection to the store (SQLite WAL lets a heatmap be read while a
// trace writes). A trace is cancelled through its progress callback: the current document
// is finished and the run stays incomplete, to be resumed by the same trace.
#pragma once

#include "ui/job.h"

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "analysis/ablation.h"
#include "analysis/corpus.h"
#include "analysis/store_types.h"
#include "engine/expert_mask.h"
#include "ui/expert_detail.h"
#include "ui/heatmap_data.h"
#include "ui/model_summary.h"
#include "ui/token_routing.h"

namespace moe {
class Model;
class Tokenizer;
}

namespace moe::ui {

struct CorpusDomainSummary {
    std::string name, source, licence;
    int64_t documents = 0;
    int64_t bytes = 0;
    int64_t tokens = -1;  // with the open model's tokenizer; -1: not counted (yet)
};

struct CorpusSummary {
    analysis::Corpus corpus;
    std::vector<CorpusDomainSummary> domains;
};

struct TraceStatus {
    int64_t run_id = 0;
    int64_t tokens_done = 0, tokens_total = 0;
    int64_t documents_done = 0, documents_total = 0;
    double seconds = 0;
    std::string domain;
    double tokens_per_second() const { return seconds > 0 ? static_cast<double>(tokens_done) / seconds : 0.0; }
    double eta_seconds() const;  // < 0: unknown
};

class Workbench : public QObject {
    Q_OBJECT
public:
    explicit Workbench(QObject* parent = nullptr);
    ~Workbench() override;

    bool hasModel() const { return model_ != nullptr; }  // weights loaded: traces, ablations, local chat
    // A model directory is open: with its weights, or only config.json and the tokenizer (a
    // model too big for this machine, whose server the chat can talk to).
    bool hasModelConfig() const { return config_ != nullptr; }
    std::shared_ptr<const ModelConfig> modelConfig() const { return config_; }
    bool canTrace() const { return model_ && tokenizer_; }
    const ModelSummary& modelSummary() const { return summary_; }
    bool modelLoading() const { return model_loading_; }
    QString storePath() const { return store_path_; }
    bool hasStore() const { return store_ready_; }
    const std::vector<analysis::RunInfo>& runs() const { return runs_; }
    const std::optional<CorpusSummary>& corpus() const { return corpus_; }
    bool traceRunning() const { return trace_running_; }
    const TraceStatus& traceStatus() const { return trace_status_; }
    QString lastTraceSummary() const { return last_trace_summary_; }
    int64_t lastTraceRun() const { return last_trace_run_; }  // the run the last trace wrote; 0: it failed
    // The finished documents of the run last asked for with requestDocuments.
    const std::vector<analysis::DocumentEntry>& documents() const { return documents_; }
    std::shared_ptr<const Model> model() const { return model_; }  // null for a config-only directory
    std::shared_ptr<const Tokenizer> tokenizer() const { return tokenizer_; }
    // Where models run (moe::Backend); a model opened later is loaded there.
    Backend backend() const { return backend_; }
    void setBackend(Backend b) { backend_ = b; }
    // Waits (processing events) until no job of this workbench is running; for tests and exit.
    bool waitIdle(int timeout_ms);

    static QString split() { return QStringLiteral("test"); }

public slots:
    void openModel(const QString& dir);
    void openStore(const QString& path);
    void openCorpus(const QString& path);
    void refreshRuns();
    // Deletes a run from the store with all its routing (analysis::RoutingStore::delete_runs),
    // then reads the runs again; refused for the run this workbench's trace is writing.
    void deleteRun(qint64 run_id);  // → runDeleted, runsChanged
    // Traces the chosen domains of the open corpus (all when empty), at most
    // `max_tokens_per_domain` tokens each (0: all), into the open store.
    // With a mask, the run is traced with those experts off (stored as the run's mask).
    void startTrace(const QStringList& domains, qint64 max_tokens_per_domain, std::optional<ExpertMask> mask = {});
    void cancelTrace();
    void requestHeatmap(const moe::ui::HeatmapRequest& request);
    void requestDocuments(qint64 run_id);                   // → documentsReady
    void requestTokenRouting(qint64 run_id, qint64 doc_id);  // → tokenRoutingReady / tokenRoutingFailed
    void requestExpertDetail(qint64 run_id, qint64 layer, qint64 expert);  // → expertDetailReady / Failed
    // The minimum count of the details' top tokens from now on (analysis::kVocabMinCount at first).
    void setExpertDetailMinCount(qint64 min_count) { detail_min_count_ = std::max<qint64>(1, min_count); }
    // analysis/csv_exports: the statistics of one run (0: every run), or a run's per-token routing.
    void exportStatsCsv(const QString& path, qint64 run_id);  // → exportFinished
    void exportTokensCsv(const QString& path, qint64 run_id);
    void exportAblationsCsv(const QString& path);  // the ablations kept in the store (moewb export --ablations)
    void requestStoredAblations();  // → storedAblationsReady / storedAblationsFailed
    void deleteAblation(qint64 ablation_id);  // → ablationDeleted

signals:
    void modelLoadingStarted(const QString& dir);
    void modelOpened();
    void modelFailed(const QString& dir, const QString& error);
    void storeOpened(const QString& path);
    void storeFailed(const QString& path, const QString& error);
    void corpusOpened();
    void corpusTokensCounted();  // CorpusDomainSummary::tokens are filled in
    void corpusFailed(const QString& path, const QString& error);
    void runsChanged();
    void runDeleted(bool ok, const QString& message);
    void storedAblationsReady(const std::vector<moe::analysis::StoredAblation>& ablations);
    void storedAblationsFailed(const QString& error);
    void ablationDeleted(bool ok, const QString& message);
    void traceStarted();
    void traceProgress();
    void traceFinished(bool ok, const QString& summary);
    void heatmapReady(const moe::ui::HeatmapGrid& grid);
    void heatmapFailed(const QString& error);
    void documentsReady(qint64 run_id);
    void tokenRoutingReady(const moe::ui::TokenRouting& routing);
    void tokenRoutingFailed(const QString& error);
    void expertDetailReady(const moe::ui::ExpertDetail& detail);
    void expertDetailFailed(const QString& error);
    void exportFinished(bool ok, const QString& message);
    void logMessage(int level, const QString& message);

private:
    void postTraceStatus(const TraceStatus& s);
    void countCorpusTokens();  // when both a tokenizer and a corpus are open
    void jobStarted() { ++jobs_running_; }
    void jobDone() { --jobs_running_; }

    std::shared_ptr<const Model> model_;

    std::shared_ptr<const ModelConfig> config_;
    std::shared_ptr<const Tokenizer> tokenizer_;
    ModelSummary summary_;
    bool model_loading_ = false;
    int model_generation_ = 0;
    Backend backend_ = Backend::cpu;  // a later openModel supersedes an earlier one still loading

    QString store_path_;
    bool store_ready_ = false;
    int store_generation_ = 0;
    std::vector<analysis::RunInfo> runs_;

    std::optional<CorpusSummary> corpus_;
    int count_generation_ = 0;

    bool trace_running_ = false;
    // Shared with the running trace's worker: its cancel flag, and this object while it lives
    // (the destructor clears it under the mutex, so the worker never posts to a dead object).
    using Control = JobControl<Workbench>;
    std::shared_ptr<Control> trace_control_;
    TraceStatus trace_status_;
    QElapsedTimer live_refresh_;  // since the runs were last read during a trace
    QString last_trace_summary_;
    int64_t last_trace_run_ = 0;
    qint64 detail_min_count_ = analysis::kVocabMinCount;
    int stored_ablations_generation_ = 0;

    int heatmap_generation_ = 0;
    std::vector<analysis::DocumentEntry> documents_;
    int documents_generation_ = 0;
    int routing_generation_ = 0;
    int jobs_running_ = 0;
};

}  // namespace moe::ui
