// The ablation evaluator: what breaks when experts are switched off. It runs a corpus's
// documents through the model as published (the baseline) and under each of a list of
// conditions (expert masks), window by window, and scores every condition per domain
// against the baseline on the same tokens: loss, perplexity ratio, KL(baseline ‖ ablated)
// of the next-token distributions, and top-1 agreement. The baseline's forward pass runs
// once per window and serves every condition of the job, so a sweep of N conditions costs
// N + 1 passes. Metric definitions: docs/metrics.md ("Ablation"); storage: docs/store.md.
//
// The sweep builders turn the DeepSeekMoE paper's experiments into conditions, each with
// its control (docs/ablation.md).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analysis/corpus.h"
#include "analysis/corpus_tokens.h"
#include "analysis/routing_store.h"
#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

struct AblationCondition {
    std::string sweep;            // "" (a single mask), "skip-top", "top-routed", "shared", "k"
    std::optional<double> value;  // the sweep's parameter (ratio, fraction, k), if any
    std::string control;          // "" for the experiment itself, else the control's name
    std::optional<uint64_t> seed;  // of a random control
    std::optional<int64_t> from_run;  // the trace run a top-/least-routed mask was taken from
    ExpertMask mask;
};

// Sums over the predicted tokens of one domain (or all domains).
struct AblationScore {
    std::string domain;
    int64_t tokens = 0;        // predicted tokens (each window predicts its tokens after the first)
    double baseline_nll = 0;   // Σ −ln p_baseline(next token)
    double ablated_nll = 0;    // Σ −ln p_ablated(next token)
    double kl = 0;             // Σ KL(p_baseline ‖ p_ablated), nats
    int64_t top1_agree = 0;    // tokens whose argmax is the same under both

    // Means over the predicted tokens; NaN where there are none (a domain whose documents are
    // empty or one token long): no score, written as null (JSON) or an empty field (CSV).
    double baseline_loss() const { return per_token(baseline_nll); }
    double ablated_loss() const { return per_token(ablated_nll); }
    double delta_loss() const { return ablated_loss() - baseline_loss(); }
    double ppl_ratio() const;  // exp(delta_loss)
    double mean_kl() const { return per_token(kl); }
    double top1_agreement() const { return per_token(static_cast<double>(top1_agree)); }
    double per_token(double sum) const {
        return tokens ? sum / static_cast<double>(tokens) : std::numeric_limits<double>::quiet_NaN();
    }
    void add(const AblationScore& o);
};

struct AblationConditionResult {
    AblationCondition condition;
    std::vector<AblationScore> domains;  // in corpus order
    AblationScore all;                   // over every domain ("all")
    int64_t ablation_id = 0;             // in the store, once stored
};

struct AblationProgress {
    int64_t tokens_done = 0, tokens_total = 0;  // forward tokens, baseline and conditions together
    double seconds = 0;
    std::string domain;
};

struct AblationOptions {
    int64_t max_tokens = 0;  // per domain, as the trace job counts them; 0: all
    int64_t context = 0;     // window length; 0: the model's max_position_embeddings
    int64_t step_tokens = 0;  // tokens per forward step inside a window; 0: Model::step_tokens()
    std::function<bool(const AblationProgress&)> progress;  // false: stop after this forward step
    // The corpus's documents, read already by the caller (as TraceOptions::tokenized); null: read here.
    std::vector<std::vector<TokenizedDocument>>* tokenized = nullptr;
};

struct AblationResult {
    std::vector<AblationScore> baseline;  // per domain: tokens and baseline_nll
    std::vector<AblationConditionResult> conditions;
    int64_t context = 0;
    int64_t step_tokens = 0;  // as run
    double seconds = 0;
    bool stopped = false;  // the progress callback asked to stop: results are partial
    int64_t baseline_id = 0;  // in the store, once stored
};

AblationResult run_ablation(const Model& model, const Tokenizer& tokenizer, const Corpus& corpus,
                            std::span<const AblationCondition> conditions, const AblationOptions& opt);

// --- sweeps (docs/ablation.md) ---
// r = round(ratio · E) most probable experts excluded per token; control "random": as many
// random experts per token (seeded).
std::vector<AblationCondition> skip_top_sweep(const ModelConfig& cfg, std::span<const double> ratios,
                                              bool random_control, uint64_t seed, MaskMode mode);
// Per MoE layer, the n = round(fraction · E) experts most selected in a trace run switched
// off; controls "least-routed" (the n least selected) and "random" (n random ones per layer).
// `selections[l][e]` is how often the run selected expert e of layer l (all domains).
std::vector<AblationCondition> routed_sweep(const ModelConfig& cfg,
                                            const std::vector<std::vector<int64_t>>& selections,
                                            int64_t from_run, std::span<const double> fractions,
                                            std::span<const std::string> controls, uint64_t seed, MaskMode mode);
// Shared experts off; shared off with one more routed expert (k+1, the paper's equal
// compute); control "k+1": one more routed expert with the shared ones on.
std::vector<AblationCondition> shared_sweep(const ModelConfig& cfg, MaskMode mode);
// k routed experts per token for each value (E is dense routing); the published k is the
// control ("published-k", equal to the baseline).
std::vector<AblationCondition> k_sweep(const ModelConfig& cfg, std::span<const int64_t> values, MaskMode mode);

// How often a trace run selected each expert, per MoE layer of `cfg` (all domains summed).
std::vector<std::vector<int64_t>> expert_selections(RoutingStore& store, int64_t run_id, const ModelConfig& cfg);

// --- the store (schema 2: ablation_baselines, ablations, ...) ---
// Records the baseline (once per model, corpus, split, domains, budget, context, dtype and
// source; a later job with the same key refers to the same row) and every condition, in one
// transaction; sets the ids in `result`.
void store_ablation(RoutingStore& store, const ModelRecord& model, const Corpus& corpus, const std::string& source,
                    const std::string& dtype, const AblationOptions& opt, AblationResult& result);

struct StoredAblation {
    int64_t ablation_id = 0, baseline_id = 0, model_id = 0;
    std::string model_name, corpus_name, split;
    std::string sweep, control, mask_spec, mask_mode, created;
    std::optional<double> value;
    std::optional<int64_t> seed, from_run;
    int64_t max_tokens = 0, context = 0;
    // What computed it (its baseline's): the backend ("cpu", "cuda", "cuda-bf16"), the weights'
    // dtype, and the tokens of a forward step inside a window.
    std::string source, dtype;
    int64_t step_tokens = 0;
    std::vector<AblationScore> domains;  // baseline and ablated sums per domain
    AblationScore all() const;           // over every domain ("all")
};
std::vector<StoredAblation> read_ablations(RoutingStore& store, std::optional<int64_t> model_id = std::nullopt);
// Deletes the ablations (their scores per domain with them) in one transaction, all or none:
// an id the store does not hold deletes nothing (moe::Error naming the store). The baselines
// stay, for later jobs of the same key. Ids are never given again. Returns them as they were.
std::vector<StoredAblation> delete_ablations(RoutingStore& store, const std::vector<int64_t>& ablation_ids);

}  // namespace moe::analysis
