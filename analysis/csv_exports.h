// The CSV exports of a routing store (columns: docs/store.md), all streamed through
// CsvWriter: the per-expert statistics table, the long per-token routing table, per-token
// router entropy and expert co-activation. Each returns the number of data rows written.
// And the scores of an ablation evaluation or sweep (`moewb ablate --csv`, the ablation panel).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "analysis/ablation.h"
#include "analysis/csv_writer.h"
#include "analysis/routing_store.h"

namespace moe::analysis {

inline constexpr const char* kStatsCsvHeader =
    "run_id,model,domain,layer,expert,tokens,count,share,ratio_to_uniform,gate_weight_sum,mean_gate_weight,rank0_count";
inline constexpr const char* kTokensCsvHeader =
    "run_id,doc_id,domain,token_pos,token_id,token_text,layer,rank,expert,gate_weight";
inline constexpr const char* kEntropyCsvHeader = "run_id,doc_id,domain,token_pos,token_id,token_text,layer,entropy";
inline constexpr const char* kCoactivationCsvHeader =
    "run_id,domain,layer,kind,expert_a,expert_b,count,count_a,count_b,tokens,lift";
inline constexpr const char* kAblationCsvHeader =
    "sweep,value,control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,ppl_ratio,kl,top1_agreement";
inline constexpr const char* kStoredAblationsCsvHeader =
    "ablation_id,model,corpus,split,max_tokens,context,created,from_run,seed,"
    "sweep,value,control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,ppl_ratio,kl,top1_agreement";

// One row per run × domain × layer × expert; every run when `run_id` is not given.
int64_t write_stats_csv(RoutingStore& store, std::optional<int64_t> run_id, std::optional<int64_t> layer,
                        const std::string& out);
// One row per token × layer × rank, documents in the order the run finished them.
int64_t write_tokens_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer, const std::string& out);
// One row per token × layer; input error when the run has no entropy.
int64_t write_entropy_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer, const std::string& out);
// Non-zero pairs per domain (and "*" for all) × layer: kind "pair" (unordered, a < b) and
// "adjacent" (ordered: a at rank r, b at rank r+1).
int64_t write_coactivation_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer,
                               const std::string& out);
// One row per condition × domain, then the condition's "all" row; closes `w` (its file is in
// place only then). `w` is made by the caller so that a path that cannot be written is
// refused before the evaluation.
int64_t write_ablation_csv(CsvWriter& w, const AblationResult& result);
// Every ablation kept in the store (`moewb ablate --db`, the panel's "Keep in the store"): what
// it was evaluated on and how, then the columns of write_ablation_csv; a row per domain and
// the ablation's "all".
int64_t write_stored_ablations_csv(RoutingStore& store, const std::string& out);

}  // namespace moe::analysis
