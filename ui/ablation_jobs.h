// The ablation panel's jobs on worker threads: the evaluation of one mask on chosen domains
// (analysis/ablation.h run_ablation, with progress and Cancel, optionally stored with
// store_ablation), and the quick masks taken from a trace run — top-N / bottom-N most
// selected experts per layer and random N (seeded), all built by analysis/ablation.h's
// routed_sweep from expert_selections, as `moewb ablate --sweep top-routed` builds them.
// Results and errors come back as signals on the GUI thread; nothing is computed here.
#pragma once

#include "ui/job.h"

#include <QObject>
#include <QStringList>
#include <atomic>
#include <memory>
#include <mutex>
#include <functional>
#include <optional>

#include "analysis/ablation.h"

namespace moe::ui {

class Workbench;

enum class QuickMask { top_selected, least_selected, random };

class AblationJobs : public QObject {
    Q_OBJECT
public:
    explicit AblationJobs(Workbench* workbench, QObject* parent = nullptr);
    ~AblationJobs() override;

    bool running() const { return running_; }
    const analysis::AblationProgress& progress() const { return progress_; }
    // The last finished evaluation (partial when it was cancelled), and its mask's SPEC.
    const std::optional<analysis::AblationResult>& result() const { return result_; }
    bool waitIdle(int timeout_ms);

public slots:
    // Evaluates `mask` against the published model on the open corpus's `domains` (all when
    // empty), at most `max_tokens` tokens per domain (0: all); `store`: record it in the store.
    void start(const moe::ExpertMask& mask, const QStringList& domains, qint64 max_tokens, bool store);
    void cancel();
    // n experts per MoE layer: the most or least selected in `run_id`, or random with `seed`.
    void requestQuickMask(moe::ui::QuickMask kind, int n, qint64 run_id, quint64 seed, moe::MaskMode mode);
    // The top-routed sweep (`moewb ablate --sweep top-routed`): for each fraction, the most
    // selected experts of `run_id` switched off in every MoE layer, with the least-routed and
    // random (seeded) controls; one baseline for all conditions.
    void startSweep(qint64 run_id, const QList<double>& fractions, quint64 seed, moe::MaskMode mode,
                    const QStringList& domains, qint64 max_tokens, bool store);

signals:
    void started();
    void progressed();
    void finished(bool ok, const QString& summary);
    void quickMaskReady(const moe::ExpertMask& mask, const QString& description);
    void quickMaskFailed(const QString& error);

private:
    // Checks what every evaluation needs and picks the domains; "" when all is well.
    QString check(const QStringList& domains, bool store, analysis::Corpus& corpus) const;
    // Runs the conditions `build` makes (on the worker) against one baseline.
    void launch(std::function<std::vector<analysis::AblationCondition>(const Model&)> build, analysis::Corpus corpus,
                qint64 max_tokens, bool store, const QString& what);

    Workbench* workbench_;
    bool running_ = false;
    int jobs_ = 0;
    analysis::AblationProgress progress_;
    std::optional<analysis::AblationResult> result_;
    // Shared with the running evaluation's worker (as Workbench's trace control).
    using Control = JobControl<AblationJobs>;
    std::shared_ptr<Control> control_;
};

}  // namespace moe::ui
