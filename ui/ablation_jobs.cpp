// AblationJobs; see ablation_jobs.h.
#include "ui/ablation_jobs.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QMetaObject>
#include <chrono>

#include "analysis/fingerprint.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "ui/job.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace an = moe::analysis;

AblationJobs::AblationJobs(Workbench* workbench, QObject* parent) : QObject(parent), workbench_(workbench) {}

AblationJobs::~AblationJobs() {
    if (control_) control_->detach();
}

bool AblationJobs::waitIdle(int timeout_ms) { return wait_for_jobs(jobs_, timeout_ms); }

QString AblationJobs::check(const QStringList& domains, bool store, an::Corpus& corpus) const {
    if (running_) return tr("an evaluation is already running");
    if (!workbench_->hasModel())
        return workbench_->hasModelConfig() ? tr("this model directory has no weights: nothing to evaluate here")
                                            : tr("open a model first");
    if (!workbench_->canTrace()) return tr("this model cannot evaluate text: it has no usable tokenizer");
    if (!workbench_->corpus()) return tr("open a corpus first");
    if (store && !workbench_->hasStore()) return tr("open a routing store to keep the results in");
    corpus = workbench_->corpus()->corpus;
    if (!domains.isEmpty()) {
        corpus.domains.clear();
        for (const an::CorpusDomain& d : workbench_->corpus()->corpus.domains)
            if (domains.contains(QString::fromStdString(d.name))) corpus.domains.push_back(d);
    }
    if (corpus.domains.empty()) return tr("choose at least one domain");
    return {};
}

void AblationJobs::start(const ExpertMask& mask, const QStringList& domains, qint64 max_tokens, bool store) {
    an::Corpus corpus;
    QString problem = check(domains, store, corpus);
    if (problem.isEmpty() && mask.empty()) problem = tr("the mask switches nothing off: toggle experts first");
    if (!problem.isEmpty()) {
        emit finished(false, problem);
        return;
    }
    launch(
        [mask](const Model&) {
            an::AblationCondition c;
            c.mask = mask;
            return std::vector<an::AblationCondition>{c};
        },
        std::move(corpus), max_tokens, store,
        tr("mask %1 (%2)").arg(QString::fromStdString(mask.spec()), mask_mode_name(mask.mode())));
}

void AblationJobs::startSweep(qint64 run_id, const QList<double>& fractions, quint64 seed, MaskMode mode,
                              const QStringList& domains, qint64 max_tokens, bool store) {
    an::Corpus corpus;
    QString problem = check(domains, store, corpus);
    if (problem.isEmpty() && (!workbench_->hasStore() || run_id <= 0))
        problem = tr("select a trace run in the runs panel: the sweep ranks experts by its counts");
    if (problem.isEmpty() && fractions.isEmpty()) problem = tr("give at least one fraction");
    if (!problem.isEmpty()) {
        emit finished(false, problem);
        return;
    }
    const std::string store_path = workbench_->storePath().toStdString();
    const std::vector<double> f(fractions.begin(), fractions.end());
    launch(
        [=](const Model& model) {
            an::RoutingStore s = an::RoutingStore::open(store_path, an::StoreOptions::existing(true));
            const auto selections = an::expert_selections(s, run_id, model.config());
            const std::vector<std::string> controls{"least-routed", "random"};
            return an::routed_sweep(model.config(), selections, run_id, f, controls, seed, mode);
        },
        std::move(corpus), max_tokens, store, tr("the top-routed sweep of run %1").arg(run_id));
}

void AblationJobs::launch(std::function<std::vector<an::AblationCondition>(const Model&)> build, an::Corpus corpus,
                          qint64 max_tokens, bool store, const QString& what) {
    running_ = true;
    ++jobs_;
    progress_ = {};
    control_ = std::make_shared<Control>();
    control_->target = this;
    emit started();
    emit workbench_->logMessage(0, tr("evaluating %1 on %2 domain(s), %3 tokens per domain")
                                       .arg(what)
                                       .arg(corpus.domains.size())
                                       .arg(max_tokens > 0 ? QString::number(max_tokens) : tr("all")));
    auto model = workbench_->model();
    auto tokenizer = workbench_->tokenizer();
    auto control = control_;
    const std::string store_path = store ? workbench_->storePath().toStdString() : std::string();
    const std::string dir = workbench_->modelSummary().dir;
    run_job<an::AblationResult>(
        this,
        [=] {
            const std::vector<an::AblationCondition> conditions = build(*model);
            an::AblationOptions opt;
            opt.max_tokens = max_tokens;
            auto last_post = std::make_shared<std::chrono::steady_clock::time_point>();
            opt.progress = [=](const an::AblationProgress& p) {
                const auto now = std::chrono::steady_clock::now();
                if (p.tokens_done == p.tokens_total || now - *last_post >= std::chrono::milliseconds(100)) {
                    *last_post = now;
                    std::lock_guard lock(control->mutex);
                    if (AblationJobs* target = control->target)
                        QMetaObject::invokeMethod(
                            target,
                            [target, p] {
                                target->progress_ = p;
                                emit target->progressed();
                            },
                            Qt::QueuedConnection);
                }
                return !control->stop.load();
            };
            an::AblationResult r = an::run_ablation(*model, *tokenizer, corpus, conditions, opt);
            if (!store_path.empty() && !r.stopped) {
                an::RoutingStore s = an::RoutingStore::open(store_path);
                an::store_ablation(s, an::describe_model(*model, tokenizer.get(), dir), corpus,
                                   model->backend_label(),
                                   model->dtype_summary(), opt, r);
            }
            return r;
        },
        [this](JobResult<an::AblationResult> r) {
            --jobs_;
            running_ = false;
            if (!r.ok()) {
                emit workbench_->logMessage(2, tr("ablation failed: ") + r.error);
                emit finished(false, r.error);
                return;
            }
            result_ = std::move(*r.value);
            const an::AblationScore& all = result_->conditions.front().all;
            QString summary =
                result_->conditions.size() > 1
                    ? tr("%1 conditions on %2 tokens in %3 s").arg(result_->conditions.size()).arg(all.tokens).arg(result_->seconds, 0, 'f', 1)
                    : tr("%1 tokens: Δloss %2 nats, perplexity ×%3, KL %4, top-1 agreement %5% in %6 s")
                          .arg(all.tokens)
                          .arg(all.delta_loss(), 0, 'f', 4)
                          .arg(all.ppl_ratio(), 0, 'f', 3)
                          .arg(all.mean_kl(), 0, 'f', 4)
                          .arg(100.0 * all.top1_agreement(), 0, 'f', 1)
                          .arg(result_->seconds, 0, 'f', 1);
            if (result_->stopped) summary += tr(" — cancelled: partial results, not stored");
            else if (result_->conditions.front().ablation_id)
                summary += tr(" — stored as ablation %1").arg(result_->conditions.front().ablation_id);
            emit workbench_->logMessage(result_->stopped ? 1 : 0, tr("ablation: ") + summary);
            emit finished(true, summary);
        });
}

void AblationJobs::cancel() {
    if (running_ && control_) control_->stop = true;
}

void AblationJobs::requestQuickMask(QuickMask kind, int n, qint64 run_id, quint64 seed, MaskMode mode) {
    if (!workbench_->hasModelConfig()) {
        emit quickMaskFailed(tr("open a model first"));
        return;
    }
    if (kind != QuickMask::random && (!workbench_->hasStore() || run_id <= 0)) {
        emit quickMaskFailed(tr("select a trace run in the runs panel: top-N and bottom-N are taken from its counts"));
        return;
    }
    ++jobs_;
    const std::shared_ptr<const ModelConfig> config = workbench_->modelConfig();
    const std::string store_path = workbench_->storePath().toStdString();
    run_job<ExpertMask>(
        this,
        [=]() -> ExpertMask {
            const ModelConfig& cfg = *config;
            if (n < 1 || n >= cfg.n_routed_experts)
                throw_input_error("N", "must be between 1 and " + std::to_string(cfg.n_routed_experts - 1));
            std::vector<std::vector<int64_t>> selections;
            if (kind == QuickMask::random) {
                selections.assign(static_cast<size_t>(cfg.n_moe_layers()), std::vector<int64_t>(static_cast<size_t>(cfg.n_routed_experts), 0));
            } else {
                an::RoutingStore store = an::RoutingStore::open(store_path, an::StoreOptions::existing(true));
                selections = an::expert_selections(store, run_id, cfg);
            }
            // The fraction n / E gives exactly n experts per layer (routed_sweep rounds f · E).
            const double f = static_cast<double>(n) / static_cast<double>(cfg.n_routed_experts);
            const std::vector<std::string> controls = {kind == QuickMask::least_selected ? "least-routed" : "random"};
            const auto conditions =
                an::routed_sweep(cfg, selections, kind == QuickMask::random ? 0 : run_id, std::span(&f, 1),
                                 kind == QuickMask::top_selected ? std::span<const std::string>() : std::span(controls), seed, mode);
            return conditions.at(kind == QuickMask::top_selected ? 0 : 1).mask;
        },
        [this, kind, n, run_id, seed](JobResult<ExpertMask> r) {
            --jobs_;
            if (!r.ok()) {
                emit quickMaskFailed(r.error);
                return;
            }
            QString what = kind == QuickMask::top_selected     ? tr("the %1 most selected experts per layer in run %2").arg(n).arg(run_id)
                           : kind == QuickMask::least_selected ? tr("the %1 least selected experts per layer in run %2").arg(n).arg(run_id)
                                                               : tr("%1 random experts per layer (seed %2)").arg(n).arg(seed);
            emit quickMaskReady(*r.value, what);
        });
}

}  // namespace moe::ui
