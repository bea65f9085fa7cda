// The ablation evaluator; see ablation.h.
#include "analysis/ablation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "analysis/corpus_tokens.h"
#include "analysis/fingerprint.h"
#include "analysis/store/schema.h"
#include "analysis/store/sqlite_db.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/scoring.h"

namespace moe::analysis {

namespace {

constexpr int64_t kFirstStepTokens = 256;  // the step of every evaluation before steps could differ

struct TokenScore {
    double nll = 0, kl = 0;
    bool agree = false;
};

// One document window of one domain, scored for the baseline and every condition. The rows of
// logits are scored where the backend makes them (Model::forward_scored): the baseline's
// log-probabilities are kept there, in a bank of the window's predicted positions.
class WindowScorer {
public:
    WindowScorer(const Model& model, std::span<const AblationCondition> conditions, int64_t step)
        : model_(model), conditions_(conditions), step_(static_cast<size_t>(step)) {}

    // ids: the window's tokens; stream: the window's random stream. Adds into `baseline`
    // and `scores[c]`. Returns false when `step` asked to stop.
    bool score(std::span<const int32_t> ids, uint64_t stream, AblationScore& baseline, std::vector<AblationScore>& scores,
               const std::function<bool(int64_t tokens)>& step) {
        const size_t n = ids.size();
        if (n < 2) return true;
        const size_t predicted = n - 1;
        if (!bank_ || bank_->rows() < static_cast<int64_t>(predicted)) {
            bank_.reset();  // the former bank's memory back before the larger one is taken
            bank_ = model_.make_score_bank(static_cast<int64_t>(predicted));
        }
        base_top_.resize(predicted);
        token_.assign(predicted, {});

        // Baseline: log-probabilities of every predicted position, kept for the conditions.
        if (!run(
                ids, nullptr, stream, Keep::baseline,
                [&](size_t pos, const RowScore& r) {
                    token_[pos].nll = r.nll;
                    base_top_[pos] = r.top;
                },
                step))
            return false;
        baseline.tokens += static_cast<int64_t>(predicted);
        for (const TokenScore& t : token_) baseline.baseline_nll += t.nll;

        std::vector<TokenScore> scored(predicted);
        for (size_t c = 0; c < conditions_.size(); ++c) {
            if (!run(
                    ids, &conditions_[c].mask, stream, Keep::against_baseline,
                    [&](size_t pos, const RowScore& r) {
                        scored[pos].kl = r.kl;
                        scored[pos].nll = r.nll;
                        scored[pos].agree = r.top == base_top_[pos];
                    },
                    step))
                return false;
            AblationScore& s = scores[c];
            s.tokens += static_cast<int64_t>(predicted);
            for (size_t pos = 0; pos < predicted; ++pos) {  // summed in order: thread-count invariant
                s.baseline_nll += token_[pos].nll;
                s.ablated_nll += scored[pos].nll;
                s.kl += scored[pos].kl;
                s.top1_agree += scored[pos].agree ? 1 : 0;
            }
        }
        return true;
    }

private:
    enum class Keep { baseline, against_baseline };

    // Runs the window through the model in chunks, each chunk's predicted positions scored
    // (kept in the bank, or against it); calls per_token(pos, its score) for each.
    template <class PerToken>
    bool run(std::span<const int32_t> ids, const ExpertMask* mask, uint64_t stream, Keep keep, PerToken&& per_token,
             const std::function<bool(int64_t)>& step) {
        const size_t n = ids.size();
        Session session(model_);
        ForwardOptions fo;
        fo.mask = (mask && !mask->empty()) ? mask : nullptr;
        fo.random_stream = stream;
        for (size_t c0 = 0; c0 < n; c0 += step_) {
            const size_t cn = std::min(step_, n - c0);
            const size_t usable = std::min(cn, n - 1 - c0);  // the window's last token predicts nothing
            ScoreRequest req;
            req.targets = ids.subspan(c0 + 1, usable);
            if (keep == Keep::baseline) {
                req.keep = bank_.get();
                req.keep_row = static_cast<int64_t>(c0);
            } else {
                req.reference = bank_.get();
                req.reference_row = static_cast<int64_t>(c0);
            }
            session.forward_scored(ids.subspan(c0, cn), fo, req, rows_);
            for (size_t t = 0; t < usable; ++t) per_token(c0 + t, rows_[t]);
            if (!step(static_cast<int64_t>(cn))) return false;
        }
        return true;
    }

    const Model& model_;
    std::span<const AblationCondition> conditions_;
    size_t step_;                      // tokens per forward step
    std::unique_ptr<ScoreBank> bank_;  // [predicted, V] the baseline's log-probabilities
    std::vector<RowScore> rows_;
    std::vector<int32_t> base_top_;
    std::vector<TokenScore> token_;
};

std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// The evaluation a baseline belongs to; its forward steps' tokens only where they are not
// the first evaluations' 256 (so that a store's earlier keys stay what they were).
std::string eval_key(const Corpus& corpus, const AblationOptions& opt, const AblationResult& result,
                     const std::string& source, const std::string& dtype) {
    std::string domains;
    for (const auto& d : corpus.domains) domains += d.name + ";";
    return "corpus=" + corpus.path + "|split=" + corpus.split + "|domains=" + domains +
           "|max_tokens=" + std::to_string(opt.max_tokens) + "|context=" + std::to_string(result.context) +
           "|source=" + source + "|dtype=" + dtype +
           (result.step_tokens == kFirstStepTokens ? "" : "|step_tokens=" + std::to_string(result.step_tokens));
}

// The step of the evaluation an eval_key names (its last field where it is not 256).
int64_t step_tokens_of(const std::string& key) {
    const std::string field = "|step_tokens=";
    const size_t at = key.rfind(field);
    if (at == std::string::npos) return kFirstStepTokens;
    try {
        return std::stoll(key.substr(at + field.size()));
    } catch (const std::exception&) {
        return 0;  // not a key this build wrote: unknown
    }
}

}  // namespace

double AblationScore::ppl_ratio() const {
    return std::exp(delta_loss());
}

void AblationScore::add(const AblationScore& o) {
    tokens += o.tokens;
    baseline_nll += o.baseline_nll;
    ablated_nll += o.ablated_nll;
    kl += o.kl;
    top1_agree += o.top1_agree;
}

AblationResult run_ablation(const Model& model, const Tokenizer& tokenizer, const Corpus& corpus,
                            std::span<const AblationCondition> conditions, const AblationOptions& opt) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const ModelConfig& cfg = model.config();
    require_tokenizer_fits(tokenizer, cfg.vocab_size);
    const int64_t context = opt.context > 0 ? opt.context : cfg.max_position_embeddings;
    if (context < 2)
        throw_input_error(
            opt.context > 0 ? "--context" : "the model's max_position_embeddings",
            std::to_string(context) + ": a window needs at least 2 tokens (it predicts those after the first)");

    // Every domain's tokens first: errors surface before any work, and the progress total is known.
    const std::vector<std::vector<TokenizedDocument>> docs =
        given_or_tokenized(opt.tokenized, corpus, tokenizer, opt.max_tokens);
    AblationProgress progress;
    bool predicts = false;
    for (const auto& domain_docs : docs)
        for (const TokenizedDocument& td : domain_docs) {
            progress.tokens_total += static_cast<int64_t>(td.ids.size()) * static_cast<int64_t>(conditions.size() + 1);
            predicts = predicts || td.ids.size() >= 2;
        }
    if (!predicts)
        throw_input_error(corpus.path, "nothing to predict: no document of split '" + corpus.split +
                                           "' has two tokens (a window predicts those after its first)");

    AblationResult result;
    result.context = context;
    result.step_tokens = opt.step_tokens > 0 ? opt.step_tokens : model.step_tokens();
    for (const AblationCondition& c : conditions) result.conditions.push_back({c, {}, {"all"}, 0});
    WindowScorer scorer(model, conditions, result.step_tokens);
    auto step = [&](int64_t tokens) {
        progress.tokens_done += tokens;
        progress.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (opt.progress && !opt.progress(progress)) result.stopped = true;
        return !result.stopped;
    };
    for (size_t di = 0; di < corpus.domains.size() && !result.stopped; ++di) {
        const std::string& domain = corpus.domains[di].name;
        progress.domain = domain;
        AblationScore base{domain};
        std::vector<AblationScore> scores(conditions.size(), AblationScore{domain});
        for (const TokenizedDocument& td : docs[di]) {
            const std::span<const int32_t> ids = td.ids;
            for (size_t w0 = 0; w0 < ids.size() && !result.stopped; w0 += static_cast<size_t>(context)) {
                const size_t wn = std::min(ids.size() - w0, static_cast<size_t>(context));
                const uint64_t stream =
                    Hasher().update(domain).update(td.id).update_u64(static_cast<uint64_t>(w0)).digest();
                scorer.score(ids.subspan(w0, wn), stream, base, scores, step);
            }
            if (result.stopped) break;
        }
        result.baseline.push_back(base);
        for (size_t c = 0; c < conditions.size(); ++c) {
            result.conditions[c].domains.push_back(scores[c]);
            result.conditions[c].all.add(scores[c]);
        }
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return result;
}

// --- sweeps ---

std::vector<AblationCondition> skip_top_sweep(const ModelConfig& cfg, std::span<const double> ratios,
                                              bool random_control, uint64_t seed, MaskMode mode) {
    const int64_t E = cfg.n_routed_experts;
    std::vector<AblationCondition> out;
    for (double ratio : ratios) {
        if (!(ratio >= 0 && ratio < 1)) throw_input_error("--ratios", "ratio " + number_text(ratio) + " is not in [0, 1)");
        const int64_t r = std::llround(ratio * static_cast<double>(E));
        const std::string where = "--ratios " + number_text(ratio);
        if (E - r < cfg.num_experts_per_tok)
            throw_input_error(where, "excluding " + std::to_string(r) + " of " + std::to_string(E) +
                                         " experts leaves fewer than k = " + std::to_string(cfg.num_experts_per_tok));
        AblationCondition c;
        c.sweep = "skip-top";
        c.value = ratio;
        c.mask = ExpertMask::parse("*:skip-top=" + std::to_string(r), cfg, mode);
        out.push_back(c);
        if (random_control) {
            AblationCondition rc = c;
            rc.control = "random";
            rc.seed = seed;
            rc.mask = ExpertMask::parse("*:skip-random=" + std::to_string(r) + "@" + std::to_string(seed), cfg, mode);
            out.push_back(rc);
        }
    }
    return out;
}

std::vector<AblationCondition> routed_sweep(const ModelConfig& cfg, const std::vector<std::vector<int64_t>>& selections,
                                            int64_t from_run, std::span<const double> fractions,
                                            std::span<const std::string> controls, uint64_t seed, MaskMode mode) {
    const int64_t E = cfg.n_routed_experts;
    std::vector<int64_t> moe_layers;
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
        if (cfg.is_moe_layer(l)) moe_layers.push_back(l);
    MOE_ASSERT(selections.size() == moe_layers.size());
    for (const std::string& c : controls)
        if (c != "least-routed" && c != "random")
            throw_input_error("--control", "'" + c + "' is not a control of top-routed (least-routed, random)");

    std::vector<AblationCondition> out;
    for (double f : fractions) {
        if (!(f > 0 && f < 1)) throw_input_error("--fractions", "fraction " + number_text(f) + " is not in (0, 1)");
        const int64_t n = std::max<int64_t>(1, std::llround(f * static_cast<double>(E)));
        if (mode == MaskMode::reroute && E - n < cfg.num_experts_per_tok)
            throw_input_error("--fractions " + number_text(f),
                              "switching off " + std::to_string(n) + " of " + std::to_string(E) +
                                  " experts leaves fewer than k = " + std::to_string(cfg.num_experts_per_tok));
        auto make = [&](const std::string& control, auto&& pick) {
            std::string spec;
            for (size_t li = 0; li < moe_layers.size(); ++li) {
                std::vector<int32_t> chosen = pick(li);
                std::sort(chosen.begin(), chosen.end());
                spec += (spec.empty() ? "" : ";") + ("L" + std::to_string(moe_layers[li])) + ":";
                for (size_t j = 0; j < chosen.size(); ++j) spec += (j ? "," : "") + std::to_string(chosen[j]);
            }
            AblationCondition c;
            c.sweep = "top-routed";
            c.value = f;
            c.control = control;
            c.from_run = from_run;
            if (control == "random") c.seed = seed;
            c.mask = ExpertMask::parse(spec, cfg, mode);
            out.push_back(c);
        };
        // Most (least) selected first; equal counts by ascending expert index.
        auto ranked = [&](size_t li, bool most) {
            std::vector<int32_t> order(static_cast<size_t>(E));
            std::iota(order.begin(), order.end(), 0);
            const auto& cnt = selections[li];
            std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
                return most ? cnt[static_cast<size_t>(a)] > cnt[static_cast<size_t>(b)]
                            : cnt[static_cast<size_t>(a)] < cnt[static_cast<size_t>(b)];
            });
            order.resize(static_cast<size_t>(n));
            return order;
        };
        make("", [&](size_t li) { return ranked(li, true); });
        for (const std::string& control : controls) {
            if (control == "least-routed") {
                make(control, [&](size_t li) { return ranked(li, false); });
            } else {
                make(control, [&](size_t li) {
                    std::mt19937_64 rng(Hasher().update_u64(seed).update_u64(static_cast<uint64_t>(moe_layers[li])).digest());
                    std::vector<int32_t> all(static_cast<size_t>(E));
                    std::iota(all.begin(), all.end(), 0);
                    for (int64_t j = 0; j < n; ++j) {  // partial Fisher-Yates
                        std::uniform_int_distribution<int64_t> u(j, E - 1);
                        std::swap(all[static_cast<size_t>(j)], all[static_cast<size_t>(u(rng))]);
                    }
                    all.resize(static_cast<size_t>(n));
                    return all;
                });
            }
        }
    }
    return out;
}

std::vector<AblationCondition> shared_sweep(const ModelConfig& cfg, MaskMode mode) {
    if (cfg.n_shared_experts == 0) throw_input_error(cfg.source, "the model has no shared experts to switch off");
    const int64_t k1 = cfg.num_experts_per_tok + 1;
    if (k1 > cfg.n_routed_experts)
        throw_input_error(cfg.source, "k + 1 = " + std::to_string(k1) + " is more than the routed experts");
    std::vector<AblationCondition> out;
    auto add = [&](const std::string& spec, std::optional<double> value, const std::string& control) {
        AblationCondition c;
        c.sweep = "shared";
        c.value = value;
        c.control = control;
        c.mask = ExpertMask::parse(spec, cfg, mode);
        out.push_back(c);
    };
    add("*:shared", std::nullopt, "");
    add("*:shared;*:k=" + std::to_string(k1), static_cast<double>(k1), "");
    add("*:k=" + std::to_string(k1), static_cast<double>(k1), "k+1");
    return out;
}

std::vector<AblationCondition> k_sweep(const ModelConfig& cfg, std::span<const int64_t> values, MaskMode mode) {
    std::vector<AblationCondition> out;
    for (int64_t k : values) {
        if (k < 1 || k > cfg.n_routed_experts)
            throw_input_error("--values", "k = " + std::to_string(k) + " is not in 1.." +
                                              std::to_string(cfg.n_routed_experts));
        AblationCondition c;
        c.sweep = "k";
        c.value = static_cast<double>(k);
        c.control = k == cfg.num_experts_per_tok ? "published-k" : "";
        c.mask = ExpertMask::parse("*:k=" + std::to_string(k), cfg, mode);
        out.push_back(c);
    }
    return out;
}

std::vector<std::vector<int64_t>> expert_selections(RoutingStore& store, int64_t run_id, const ModelConfig& cfg) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    // The run's MoE layers and experts must be the model's: a run of another model (a V3
    // capture beside a 16B) is refused with both shapes named.
    std::vector<std::pair<int64_t, int64_t>> run_shape, model_shape;  // (layer, experts)
    for (const RunLayer& rl : run.layers) run_shape.emplace_back(rl.layer, rl.n_expert);
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
        if (cfg.is_moe_layer(l)) model_shape.emplace_back(l, cfg.n_routed_experts);
    std::sort(run_shape.begin(), run_shape.end());
    if (run_shape != model_shape) {
        auto describe = [](const std::vector<std::pair<int64_t, int64_t>>& shape) {
            if (shape.empty()) return std::string("no MoE layers");
            return std::to_string(shape.size()) + " MoE layers (" + std::to_string(shape.front().first) + "–" +
                   std::to_string(shape.back().first) + ") of " + std::to_string(shape.front().second) + " experts";
        };
        throw_input_error("run " + std::to_string(run_id), "was traced with " + run.model_name + ", " +
                                                               describe(run_shape) + "; this model has " +
                                                               describe(model_shape));
    }
    std::vector<std::vector<int64_t>> out(model_shape.size(), std::vector<int64_t>(static_cast<size_t>(cfg.n_routed_experts), 0));
    std::vector<int64_t> index(static_cast<size_t>(cfg.num_hidden_layers), -1);
    for (size_t i = 0; i < model_shape.size(); ++i) index[static_cast<size_t>(model_shape[i].first)] = static_cast<int64_t>(i);
    int64_t total = 0;
    for (const AggregateRow& a : store.aggregates(run_id)) {
        out[static_cast<size_t>(index[static_cast<size_t>(a.layer)])][static_cast<size_t>(a.expert)] += a.count;
        total += a.count;
    }
    if (total == 0) throw_input_error("run " + std::to_string(run_id), "has no routing recorded yet");
    return out;
}

// --- the store ---

void store_ablation(RoutingStore& store, const ModelRecord& model, const Corpus& corpus, const std::string& source,
                    const std::string& dtype, const AblationOptions& opt, AblationResult& result) {
    MOE_ASSERT(!result.stopped);
    const int64_t model_id = store.add_model(model);
    const int64_t corpus_id = store.add_corpus({corpus.name, corpus.path, "", ""});
    std::vector<int64_t> domain_ids;
    for (const auto& d : corpus.domains) domain_ids.push_back(store.add_domain(corpus_id, {d.name, d.source, d.licence}));
    MOE_ASSERT(domain_ids.size() == result.baseline.size());

    sql::Db& db = store.connection();
    const char* doing = "storing ablation results";
    sql::Transaction tx(db, doing);
    const std::string key = eval_key(corpus, opt, result, source, dtype);
    {
        sql::Stmt find(db, "SELECT baseline_id FROM ablation_baselines WHERE model_id = ?1 AND eval_key = ?2", doing);
        find.bind(1, model_id).bind(2, key);
        result.baseline_id = find.step() ? find.int64(0) : 0;
    }
    if (result.baseline_id) {
        // The same evaluation again: the stored baseline must be what was just computed.
        sql::Stmt s(db, "SELECT tokens, baseline_nll FROM ablation_baseline_domains WHERE baseline_id = ?1 AND domain_id = ?2",
                    doing);
        for (size_t d = 0; d < domain_ids.size(); ++d) {
            s.bind(1, result.baseline_id).bind(2, domain_ids[d]);
            const AblationScore& b = result.baseline[d];
            const bool same = s.step() && s.int64(0) == b.tokens &&
                              std::abs(s.real(1) - b.baseline_nll) <= 1e-9 * std::max(1.0, std::abs(b.baseline_nll));
            s.reset();
            if (!same)
                throw_input_error(store.path(), "baseline " + std::to_string(result.baseline_id) + " of domain '" +
                                                    b.domain + "' differs from the one just computed for the same "
                                                    "model, corpus and budget: the corpus or the engine changed");
        }
    } else {
        sql::Stmt ins(db,
                      "INSERT INTO ablation_baselines (model_id, corpus_id, split, max_tokens, context, source, dtype, "
                      "eval_key, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                      doing);
        ins.bind(1, model_id).bind(2, corpus_id).bind(3, corpus.split).bind(4, opt.max_tokens).bind(5, result.context);
        ins.bind(6, source).bind(7, dtype).bind(8, key).bind(9, utc_now_iso8601());
        ins.run();
        result.baseline_id = db.last_insert_rowid();
        sql::Stmt dom(db,
                      "INSERT INTO ablation_baseline_domains (baseline_id, domain_id, tokens, baseline_nll) "
                      "VALUES (?1, ?2, ?3, ?4)",
                      doing);
        for (size_t d = 0; d < domain_ids.size(); ++d) {
            dom.bind(1, result.baseline_id).bind(2, domain_ids[d]).bind(3, result.baseline[d].tokens);
            dom.bind(4, result.baseline[d].baseline_nll);
            dom.run();
        }
    }
    // Ids above every one given before, deleted ones included (schema::remember_deleted_id).
    sql::Stmt ins(db,
                  "INSERT INTO ablations (ablation_id, baseline_id, sweep, value, control, seed, from_run, mask_spec, "
                  "mask_mode, created) VALUES (" +
                      schema::next_id_sql("ablations", "ablation_id", "last_deleted_ablation_id") +
                      ", ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  doing);
    sql::Stmt dom(db,
                  "INSERT INTO ablation_domains (ablation_id, domain_id, tokens, ablated_nll, kl_sum, top1_agree) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                  doing);
    const std::string now = utc_now_iso8601();
    for (AblationConditionResult& c : result.conditions) {
        const AblationCondition& k = c.condition;
        ins.bind(1, result.baseline_id).bind(2, k.sweep);
        k.value ? ins.bind(3, *k.value) : ins.bind_null(3);
        ins.bind(4, k.control);
        k.seed ? ins.bind(5, static_cast<int64_t>(*k.seed)) : ins.bind_null(5);
        k.from_run ? ins.bind(6, *k.from_run) : ins.bind_null(6);
        ins.bind(7, k.mask.spec()).bind(8, mask_mode_name(k.mask.mode())).bind(9, now);
        ins.run();
        c.ablation_id = db.last_insert_rowid();
        for (size_t d = 0; d < domain_ids.size(); ++d) {
            const AblationScore& s = c.domains[d];
            dom.bind(1, c.ablation_id).bind(2, domain_ids[d]).bind(3, s.tokens).bind(4, s.ablated_nll);
            dom.bind(5, s.kl).bind(6, s.top1_agree);
            dom.run();
        }
    }
    tx.commit();
}

std::vector<StoredAblation> delete_ablations(RoutingStore& store, const std::vector<int64_t>& ablation_ids) {
    std::vector<StoredAblation> gone;
    {
        const std::vector<StoredAblation> kept = read_ablations(store);
        for (const int64_t id : ablation_ids) {
            const auto it = std::find_if(kept.begin(), kept.end(), [&](const StoredAblation& a) { return a.ablation_id == id; });
            if (it == kept.end()) throw_input_error(store.path(), "no ablation " + std::to_string(id) + " in this store");
            gone.push_back(*it);
        }
    }
    sql::Db& db = store.connection();
    const char* doing = "deleting ablations";
    sql::Transaction tx(db, doing);
    sql::Stmt del(db, "DELETE FROM ablations WHERE ablation_id = ?1", doing);  // their domains by ON DELETE
    int64_t highest = 0;
    for (const int64_t id : ablation_ids) {
        del.bind(1, id);
        del.run();
        if (db.changes() != 1)
            throw_input_error(store.path(), "ablation " + std::to_string(id) + " was deleted by another process meanwhile");
        highest = std::max(highest, id);
    }
    schema::remember_deleted_id(db, "last_deleted_ablation_id", highest, doing);
    tx.commit();
    return gone;
}

AblationScore StoredAblation::all() const {
    AblationScore a;
    a.domain = "all";
    for (const AblationScore& s : domains) a.add(s);
    return a;
}

std::vector<StoredAblation> read_ablations(RoutingStore& store, std::optional<int64_t> model_id) {
    const StoreSnapshot snapshot(store);
    sql::Db& db = store.connection();
    const char* doing = "reading ablation results";
    std::vector<StoredAblation> out;
    {
        sql::Stmt s(db,
                    "SELECT a.ablation_id, a.baseline_id, b.model_id, m.name, c.name, b.split, a.sweep, a.control, "
                    "a.mask_spec, a.mask_mode, a.created, a.value, a.seed, a.from_run, b.max_tokens, b.context, "
                    "b.source, b.dtype, b.eval_key "
                    "FROM ablations a JOIN ablation_baselines b USING (baseline_id) "
                    "JOIN models m ON m.model_id = b.model_id JOIN corpora c ON c.corpus_id = b.corpus_id "
                    "WHERE ?1 IS NULL OR b.model_id = ?1 ORDER BY a.ablation_id",
                    doing);
        model_id ? s.bind(1, *model_id) : s.bind_null(1);
        while (s.step()) {
            StoredAblation a;
            a.ablation_id = s.int64(0);
            a.baseline_id = s.int64(1);
            a.model_id = s.int64(2);
            a.model_name = s.text(3);
            a.corpus_name = s.text(4);
            a.split = s.text(5);
            a.sweep = s.text(6);
            a.control = s.text(7);
            a.mask_spec = s.text(8);
            a.mask_mode = s.text(9);
            a.created = s.text(10);
            if (!s.is_null(11)) a.value = s.real(11);
            if (!s.is_null(12)) a.seed = s.int64(12);
            if (!s.is_null(13)) a.from_run = s.int64(13);
            a.max_tokens = s.int64(14);
            a.context = s.int64(15);
            a.source = s.text(16);
            a.dtype = s.text(17);
            a.step_tokens = step_tokens_of(s.text(18));
            out.push_back(std::move(a));
        }
    }
    sql::Stmt d(db,
                "SELECT dm.name, ad.tokens, bd.baseline_nll, ad.ablated_nll, ad.kl_sum, ad.top1_agree "
                "FROM ablation_domains ad JOIN domains dm USING (domain_id) "
                "JOIN ablation_baseline_domains bd ON bd.baseline_id = ?2 AND bd.domain_id = ad.domain_id "
                "WHERE ad.ablation_id = ?1 ORDER BY ad.domain_id",
                doing);
    for (StoredAblation& a : out) {
        d.bind(1, a.ablation_id).bind(2, a.baseline_id);
        while (d.step()) {
            AblationScore s;
            s.domain = d.text(0);
            s.tokens = d.int64(1);
            s.baseline_nll = d.real(2);
            s.ablated_nll = d.real(3);
            s.kl = d.real(4);
            s.top1_agree = d.int64(5);
            a.domains.push_back(std::move(s));
        }
        d.reset();
    }
    return out;
}

}  // namespace moe::analysis
