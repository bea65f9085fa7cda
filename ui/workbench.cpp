// Workbench; see workbench.h.
#include "ui/workbench.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QDir>
#include <QFileInfo>
#include <QMetaObject>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "analysis/corpus_tokens.h"
#include "analysis/csv_exports.h"
#include "analysis/fingerprint.h"
#include "analysis/routing_store.h"
#include "analysis/trace_runner.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "ui/job.h"

namespace moe::ui {

namespace an = moe::analysis;

namespace {

QString q(const std::string& s) { return QString::fromStdString(s); }

an::StoreOptions read_only() { return an::StoreOptions::existing(true); }
an::StoreOptions existing() { return an::StoreOptions::existing(); }

struct LoadedModel {
    std::shared_ptr<const Model> model;  // null: the directory has no weights (config only)
    std::shared_ptr<const ModelConfig> config;
    std::shared_ptr<const Tokenizer> tokenizer;
    ModelSummary summary;
};

}  // namespace

double TraceStatus::eta_seconds() const {
    const double rate = tokens_per_second();
    if (rate <= 0 || tokens_total <= 0) return -1;
    return static_cast<double>(std::max<int64_t>(0, tokens_total - tokens_done)) / rate;
}

Workbench::Workbench(QObject* parent) : QObject(parent) {}

Workbench::~Workbench() {
    if (trace_control_) trace_control_->detach();
}

bool Workbench::waitIdle(int timeout_ms) { return wait_for_jobs(jobs_running_, timeout_ms); }

void Workbench::openModel(const QString& dir) {
    const int generation = ++model_generation_;
    model_loading_ = true;
    emit modelLoadingStarted(dir);
    emit logMessage(0, "opening model " + dir);
    jobStarted();
    const std::string d = QDir::cleanPath(dir).toStdString();
    LoadOptions lo;
    lo.backend = backend_;
    run_job<LoadedModel>(
        this,
        [d, lo] {
            if (!std::filesystem::is_directory(d)) throw_input_error(d, "is not a directory");
            LoadedModel m;
            bool has_weights = false;
            for (const auto& e : std::filesystem::directory_iterator(d))
                has_weights |= e.path().extension() == ".safetensors";
            if (has_weights) {
                m.model = std::shared_ptr<const Model>(load_model(d, lo));
                m.config = std::make_shared<const ModelConfig>(m.model->config());
                m.summary = summarize_model(*m.model, d);
            } else {
                // config.json and the tokenizer only: what it is, and a server's chat.
                m.config = std::make_shared<const ModelConfig>(load_model_config(d));
                m.summary = summarize_config(*m.config, d);
            }
            // The tokenizer is needed to trace text, not to look at the model: a model without
            // one opens, and the panel says why tracing is off.
            if (!std::filesystem::exists(std::filesystem::path(d) / "tokenizer.json")) {
                m.summary.tokenizer_problem = "no tokenizer.json in the model directory: tracing text needs the model's tokenizer";
            } else {
                try {
                    m.tokenizer = std::make_shared<const Tokenizer>(Tokenizer::load_dir(d));
                    m.summary.has_tokenizer = true;
                    require_tokenizer_fits(*m.tokenizer, m.summary.vocab_size);
                } catch (const Error& e) {
                    m.summary.tokenizer_problem = e.what();
                }
            }
            return m;
        },
        [this, generation, dir](JobResult<LoadedModel> r) {
            jobDone();
            if (generation != model_generation_) return;
            model_loading_ = false;
            if (!r.ok()) {
                emit logMessage(2, r.error);
                emit modelFailed(dir, r.error);
                return;
            }
            model_ = r.value->model;
            config_ = r.value->config;
            tokenizer_ = r.value->summary.tokenizer_problem.empty() ? r.value->tokenizer : nullptr;
            summary_ = r.value->summary;
            emit logMessage(0, QString("model %1: %2, %3 layers, %4 routed + %5 shared experts, top-%6, %7")
                                   .arg(dir, q(summary_.architecture))
                                   .arg(summary_.layers)
                                   .arg(summary_.n_routed_experts)
                                   .arg(summary_.n_shared_experts)
                                   .arg(summary_.n_expert_used)
                                   .arg(q(summary_.dtype)));
            if (!summary_.tokenizer_problem.empty()) emit logMessage(1, q(summary_.tokenizer_problem));
            emit modelOpened();
            countCorpusTokens();
        });
}

void Workbench::openStore(const QString& path) {
    const int generation = ++store_generation_;
    store_ready_ = false;
    store_path_ = path;
    runs_.clear();
    emit runsChanged();
    emit logMessage(0, "opening routing store " + path);
    jobStarted();
    const std::string p = path.toStdString();
    run_job<std::vector<an::RunInfo>>(
        this,
        [p] {
            const std::filesystem::path parent = std::filesystem::path(p).parent_path();
            if (!parent.empty()) std::filesystem::create_directories(parent);
            an::RoutingStore store = an::RoutingStore::open(p);  // creates or upgrades it
            return store.runs();
        },
        [this, generation, path](JobResult<std::vector<an::RunInfo>> r) {
            jobDone();
            if (generation != store_generation_) return;
            if (!r.ok()) {
                emit logMessage(2, r.error);
                emit storeFailed(path, r.error);
                return;
            }
            store_ready_ = true;
            runs_ = std::move(*r.value);
            emit logMessage(0, QString("store %1: %2 runs").arg(path).arg(runs_.size()));
            emit storeOpened(path);
            emit runsChanged();
        });
}

void Workbench::refreshRuns() {
    if (!store_ready_) return;
    const int generation = store_generation_;
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<std::vector<an::RunInfo>>(
        this, [p] { return an::RoutingStore::open(p, read_only()).runs(); },
        [this, generation](JobResult<std::vector<an::RunInfo>> r) {
            jobDone();
            if (generation != store_generation_) return;
            if (!r.ok()) {
                emit logMessage(2, "reading the runs: " + r.error);
                return;
            }
            runs_ = std::move(*r.value);
            emit runsChanged();
        });
}

void Workbench::deleteRun(qint64 run_id) {
    if (!store_ready_) {
        emit runDeleted(false, tr("no routing store is open"));
        return;
    }
    if (trace_running_ && trace_status_.run_id == run_id) {
        emit runDeleted(false, tr("run %1 is being traced: cancel the trace first").arg(run_id));
        return;
    }
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<an::RunInfo>(
        this,
        [p, run_id] { return an::RoutingStore::open(p, existing()).delete_runs({run_id}).front(); },
        [this](JobResult<an::RunInfo> r) {
            jobDone();
            if (!r.ok()) {
                emit logMessage(2, tr("deleting a run: ") + r.error);
                emit runDeleted(false, r.error);
            } else {
                const QString m = tr("run %1 deleted (%2, %3 tokens)")
                                      .arg(r.value->run_id)
                                      .arg(QString::fromStdString(r.value->model_name))
                                      .arg(r.value->n_tokens);
                emit logMessage(0, m);
                emit runDeleted(true, m);
            }
            refreshRuns();
        });
}

void Workbench::requestStoredAblations() {
    if (!store_ready_) {
        emit storedAblationsFailed(tr("no routing store is open"));
        return;
    }
    const int generation = ++stored_ablations_generation_;
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<std::vector<an::StoredAblation>>(
        this,
        [p] {
            an::RoutingStore store = an::RoutingStore::open(p, read_only());
            return an::read_ablations(store);
        },
        [this, generation](JobResult<std::vector<an::StoredAblation>> r) {
            jobDone();
            if (generation != stored_ablations_generation_) return;
            if (!r.ok()) emit storedAblationsFailed(r.error);
            else emit storedAblationsReady(*r.value);
        });
}

void Workbench::deleteAblation(qint64 ablation_id) {
    if (!store_ready_) {
        emit ablationDeleted(false, tr("no routing store is open"));
        return;
    }
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<an::StoredAblation>(
        this,
        [p, ablation_id] {
            an::RoutingStore store = an::RoutingStore::open(p, existing());
            return an::delete_ablations(store, {ablation_id}).front();
        },
        [this](JobResult<an::StoredAblation> r) {
            jobDone();
            if (!r.ok()) {
                emit logMessage(2, tr("deleting an ablation: ") + r.error);
                emit ablationDeleted(false, r.error);
                return;
            }
            const QString m = tr("ablation %1 deleted (%2 on %3)")
                                  .arg(r.value->ablation_id)
                                  .arg(QString::fromStdString(r.value->mask_spec), QString::fromStdString(r.value->model_name));
            emit logMessage(0, m);
            emit ablationDeleted(true, m);
        });
}

void Workbench::openCorpus(const QString& path) {
    emit logMessage(0, "opening corpus " + path);
    jobStarted();
    const std::string p = path.toStdString();
    run_job<CorpusSummary>(
        this,
        [p] {
            CorpusSummary s;
            s.corpus = an::open_corpus(p, split().toStdString(), std::nullopt);
            for (const an::CorpusDomain& d : s.corpus.domains) {
                CorpusDomainSummary ds{d.name, d.source, d.licence, 0, 0};
                for (const an::CorpusDocument& doc : an::read_documents(d)) {
                    ++ds.documents;
                    ds.bytes += static_cast<int64_t>(doc.text.size());
                }
                s.domains.push_back(std::move(ds));
            }
            return s;
        },
        [this, path](JobResult<CorpusSummary> r) {
            jobDone();
            if (!r.ok()) {
                emit logMessage(2, r.error);
                emit corpusFailed(path, r.error);
                return;
            }
            corpus_ = std::move(*r.value);
            emit logMessage(0, QString("corpus %1: %2 domains").arg(path).arg(corpus_->domains.size()));
            emit corpusOpened();
            countCorpusTokens();
        });
}

void Workbench::countCorpusTokens() {
    const int generation = ++count_generation_;
    if (!tokenizer_ || !corpus_) return;
    for (CorpusDomainSummary& d : corpus_->domains) d.tokens = -1;
    jobStarted();
    auto tokenizer = tokenizer_;
    const an::Corpus corpus = corpus_->corpus;
    run_job<std::vector<int64_t>>(
        this,
        [tokenizer, corpus] {
            // The documents as a trace sees them (analysis/corpus_tokens), without a budget.
            std::vector<int64_t> tokens;
            for (const an::CorpusDomain& d : corpus.domains) {
                int64_t n = 0;
                for (const an::TokenizedDocument& doc : an::tokenize_domain(d, *tokenizer, 0))
                    n += static_cast<int64_t>(doc.ids.size());
                tokens.push_back(n);
            }
            return tokens;
        },
        [this, generation](JobResult<std::vector<int64_t>> r) {
            jobDone();
            if (generation != count_generation_ || !corpus_) return;
            if (!r.ok()) {
                emit logMessage(1, "counting the corpus's tokens: " + r.error);
                return;
            }
            for (size_t i = 0; i < r.value->size() && i < corpus_->domains.size(); ++i)
                corpus_->domains[i].tokens = (*r.value)[i];
            emit corpusTokensCounted();
        });
}

void Workbench::postTraceStatus(const TraceStatus& s) {
    // The run grows while it is traced: the runs list (and the heatmap of the selected run)
    // are read again when the run first appears and every few seconds after.
    const bool new_run = s.run_id != trace_status_.run_id;
    trace_status_ = s;
    emit traceProgress();
    if (new_run || !live_refresh_.isValid() || live_refresh_.elapsed() > 3000) {
        live_refresh_.start();
        refreshRuns();
    }
}

void Workbench::startTrace(const QStringList& domains, qint64 max_tokens_per_domain, std::optional<ExpertMask> mask) {
    QString problem;
    if (trace_running_) problem = "a trace is already running";
    else if (!model_) problem = "open a model first";
    else if (!tokenizer_) problem = "this model cannot trace text: " + q(summary_.tokenizer_problem);
    else if (!store_ready_) problem = "open a routing store first";
    else if (!corpus_) problem = "open a corpus first";
    an::Corpus corpus;
    if (problem.isEmpty()) {
        corpus = corpus_->corpus;
        if (!domains.isEmpty()) {
            corpus.domains.clear();
            for (const an::CorpusDomain& d : corpus_->corpus.domains)
                if (domains.contains(q(d.name))) corpus.domains.push_back(d);
        }
        if (corpus.domains.empty()) problem = "choose at least one domain";
    }
    if (!problem.isEmpty()) {
        emit logMessage(2, "trace: " + problem);
        emit traceFinished(false, problem);
        return;
    }
    trace_running_ = true;
    trace_control_ = std::make_shared<Control>();
    trace_control_->target = this;
    trace_status_ = {};
    live_refresh_.invalidate();
    emit traceStarted();
    emit logMessage(0, QString("tracing %1 domain(s) of %2, %3 tokens per domain%4")
                           .arg(corpus.domains.size())
                           .arg(q(corpus.path))
                           .arg(max_tokens_per_domain > 0 ? QString::number(max_tokens_per_domain) : QString("all"))
                           .arg(mask ? QString(", mask %1 (%2)").arg(q(mask->spec()), mask_mode_name(mask->mode()))
                                     : QString()));
    jobStarted();

    auto model = model_;
    auto tokenizer = tokenizer_;
    auto control = trace_control_;
    const std::string store_path = store_path_.toStdString();
    const std::string dir = summary_.dir;
    run_job<an::TraceResult>(
        this,
        [=] {
            an::RoutingStore store = an::RoutingStore::open(store_path);
            an::TraceOptions opt;
            opt.max_tokens = max_tokens_per_domain;
            opt.mask = mask ? &*mask : nullptr;
            // Progress arrives after every forward step; the GUI hears of it at most 10 times a second.
            auto last_post = std::make_shared<std::chrono::steady_clock::time_point>();
            opt.progress = [=](const an::TraceProgress& p) {
                const auto now = std::chrono::steady_clock::now();
                const bool last = p.documents_done == p.documents_total;
                if (last || now - *last_post >= std::chrono::milliseconds(100)) {
                    *last_post = now;
                    TraceStatus s{p.run_id, p.tokens_done, p.tokens_total, p.documents_done, p.documents_total,
                                  p.seconds, p.domain};
                    std::lock_guard lock(control->mutex);
                    if (Workbench* target = control->target)
                        QMetaObject::invokeMethod(target, [target, s] { target->postTraceStatus(s); }, Qt::QueuedConnection);
                }
                return !control->stop.load();
            };
            return an::run_trace(store, *model, an::describe_model(*model, tokenizer.get(), dir), *tokenizer, corpus, opt);
        },
        [this](JobResult<an::TraceResult> r) {
            jobDone();
            trace_running_ = false;
            QString summary;
            if (!r.ok()) {
                summary = "trace failed: " + r.error;
                emit logMessage(2, summary);
            } else {
                const an::TraceResult& t = *r.value;
                if (t.already_complete)
                    summary = QString("run %1: this trace is already complete").arg(t.run_id);
                else
                    summary = QString("run %1 %2: %3 documents, %4 tokens in %5 s (%6 tokens/s)%7")
                                  .arg(t.run_id)
                                  .arg(t.complete ? "complete" : "incomplete")
                                  .arg(t.documents_traced)
                                  .arg(t.tokens_traced)
                                  .arg(t.seconds, 0, 'f', 1)
                                  .arg(t.seconds > 0 ? static_cast<double>(t.tokens_traced) / t.seconds : 0.0, 0, 'f', 0)
                                  .arg(t.stopped && !t.complete ? " — cancelled; the same trace resumes it" : "");
                emit logMessage(t.complete || t.already_complete ? 0 : 1, summary);
            }
            last_trace_summary_ = summary;
            last_trace_run_ = r.ok() ? r.value->run_id : 0;
            emit traceFinished(r.ok(), summary);
            refreshRuns();
        });
}

void Workbench::cancelTrace() {
    if (trace_running_ && trace_control_) {
        trace_control_->stop = true;
        emit logMessage(1, "cancelling the trace after the current document");
    }
}

void Workbench::requestHeatmap(const HeatmapRequest& request) {
    const int generation = ++heatmap_generation_;
    if (!store_ready_) {
        emit heatmapFailed("no routing store is open");
        return;
    }
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<HeatmapGrid>(
        this,
        [p, request] {
            an::RoutingStore store = an::RoutingStore::open(p, read_only());
            return load_heatmap(store, request);
        },
        [this, generation](JobResult<HeatmapGrid> r) {
            jobDone();
            if (generation != heatmap_generation_) return;  // a newer request supersedes this one
            if (!r.ok()) emit heatmapFailed(r.error);
            else emit heatmapReady(*r.value);
        });
}

void Workbench::requestDocuments(qint64 run_id) {
    const int generation = ++documents_generation_;
    if (!store_ready_) return;
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<std::vector<an::DocumentEntry>>(
        this, [p, run_id] { return an::RoutingStore::open(p, read_only()).documents(run_id); },
        [this, generation, run_id](JobResult<std::vector<an::DocumentEntry>> r) {
            jobDone();
            if (generation != documents_generation_) return;
            if (!r.ok()) {
                emit logMessage(2, "reading the documents of run " + QString::number(run_id) + ": " + r.error);
                emit tokenRoutingFailed(r.error);
                return;
            }
            documents_ = std::move(*r.value);
            emit documentsReady(run_id);
        });
}

void Workbench::requestTokenRouting(qint64 run_id, qint64 doc_id) {
    const int generation = ++routing_generation_;
    if (!store_ready_) {
        emit tokenRoutingFailed("no routing store is open");
        return;
    }
    jobStarted();
    const std::string p = store_path_.toStdString();
    run_job<TokenRouting>(
        this,
        [p, run_id, doc_id] {
            an::RoutingStore store = an::RoutingStore::open(p, read_only());
            return load_token_routing(store, run_id, doc_id);
        },
        [this, generation](JobResult<TokenRouting> r) {
            jobDone();
            if (generation != routing_generation_) return;  // a newer request supersedes this one
            if (!r.ok()) emit tokenRoutingFailed(r.error);
            else emit tokenRoutingReady(*r.value);
        });
}

void Workbench::requestExpertDetail(qint64 run_id, qint64 layer, qint64 expert) {
    if (!store_ready_) {
        emit expertDetailFailed("no routing store is open");
        return;
    }
    jobStarted();
    const std::string p = store_path_.toStdString();
    const qint64 min_count = detail_min_count_;
    run_job<ExpertDetail>(
        this,
        [p, run_id, layer, expert, min_count] {
            an::RoutingStore store = an::RoutingStore::open(p, read_only());
            return load_expert_detail(store, run_id, layer, expert, min_count);
        },
        [this](JobResult<ExpertDetail> r) {
            jobDone();
            if (!r.ok()) emit expertDetailFailed(r.error);
            else emit expertDetailReady(*r.value);
        });
}

namespace {
enum class CsvKind { stats, tokens, ablations };
}

static void export_csv(Workbench* wb, const QString& store_path, const QString& path, qint64 run_id, CsvKind kind,
                       const std::function<void()>& started, const std::function<void()>& done) {
    started();
    const std::string p = store_path.toStdString(), out = path.toStdString();
    run_job<int64_t>(
        wb,
        [p, out, run_id, kind] {
            an::RoutingStore store = an::RoutingStore::open(p, read_only());
            switch (kind) {
            case CsvKind::stats:
                return an::write_stats_csv(store, run_id > 0 ? std::optional<int64_t>(run_id) : std::nullopt, std::nullopt, out);
            case CsvKind::tokens: return an::write_tokens_csv(store, run_id, std::nullopt, out);
            case CsvKind::ablations: return an::write_stored_ablations_csv(store, out);
            }
            return int64_t{0};
        },
        [wb, path, kind, done](JobResult<int64_t> r) {
            done();
            const QString what = kind == CsvKind::stats    ? "statistics"
                                 : kind == CsvKind::tokens ? "per-token routing"
                                                           : "stored ablations";
            if (!r.ok()) {
                emit wb->logMessage(2, "exporting the " + what + ": " + r.error);
                emit wb->exportFinished(false, r.error);
            } else {
                const QString m = QString("%1 CSV written to %2 (%3 rows)").arg(what, path).arg(*r.value);
                emit wb->logMessage(0, m);
                emit wb->exportFinished(true, m);
            }
        });
}

void Workbench::exportStatsCsv(const QString& path, qint64 run_id) {
    if (!store_ready_) {
        emit exportFinished(false, "no routing store is open");
        return;
    }
    export_csv(this, store_path_, path, run_id, CsvKind::stats, [this] { jobStarted(); }, [this] { jobDone(); });
}

void Workbench::exportAblationsCsv(const QString& path) {
    if (!store_ready_) {
        emit exportFinished(false, "no routing store is open");
        return;
    }
    export_csv(this, store_path_, path, 0, CsvKind::ablations, [this] { jobStarted(); }, [this] { jobDone(); });
}

void Workbench::exportTokensCsv(const QString& path, qint64 run_id) {
    if (!store_ready_ || run_id <= 0) {
        emit exportFinished(false, store_ready_ ? "select a run first" : "no routing store is open");
        return;
    }
    export_csv(this, store_path_, path, run_id, CsvKind::tokens, [this] { jobStarted(); }, [this] { jobDone(); });
}

}  // namespace moe::ui
