// Writes finished documents' routing into the store: one transaction per call, holding the
// documents' rows, their per-layer packed routing, and the increments of the run's
// aggregates, domain totals and counters, so the aggregates always equal what the per-token
// rows say and a crash leaves either all of a document or none of it. Used by TraceWriter's
// writer thread, which owns the connection. Private to analysis/.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <vector>

#include "analysis/store/sqlite_db.h"
#include "analysis/store_types.h"

namespace moe::analysis {

class DocumentWriter {
public:
    DocumentWriter(sql::Db& db, RunInfo run);
    // Validates every document against the run (layers, k, expert range, array sizes)
    // before writing anything; a bad document is a bug of the producer (MOE_ASSERT).
    void write(std::span<const std::unique_ptr<DocumentRouting>> docs);

private:
    struct DomainAcc {
        int64_t documents = 0;
        std::vector<int64_t> tokens;      // [L]
        std::vector<double> entropy_sum;  // [L]
        std::vector<int64_t> count;       // [Σ E_l], at offset_[l]
        std::vector<int64_t> rank0;       // [Σ E_l]
        std::vector<double> weight_sum;   // [Σ E_l]
    };
    void check(const DocumentRouting& d) const;
    void write_one(const DocumentRouting& d, int64_t seq, DomainAcc& acc);
    void flush_aggregates(std::map<int64_t, DomainAcc>& accs, int64_t docs, int64_t tokens);

    sql::Db& db_;
    RunInfo run_;
    // Prepared once: the writer runs these for every document.
    sql::Stmt max_seq_, insert_doc_, has_run_doc_, insert_run_doc_, insert_routing_, upsert_agg_, upsert_tot_,
        update_run_;
    std::vector<size_t> offset_;  // per run layer: start of its experts in DomainAcc arrays
    size_t n_cells_ = 0;
    std::vector<uint8_t> experts_blob_, weights_blob_, entropy_blob_, ids_blob_;
    std::vector<uint16_t> packed_weights_;
};

}  // namespace moe::analysis
