// RoutingStore: one SQLite file holding models, corpora, runs, per-token routing and the
// aggregates a heatmap needs (schema and example queries: docs/store.md). Opening checks
// that the file is a routing store of a schema this build reads, upgrades an older one
// (forward migrations) and turns on WAL and foreign keys. Every write is one transaction.
// A RoutingStore is one connection: use it from one thread at a time; TraceWriter opens
// its own connection for its writer thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/store_types.h"

namespace moe::analysis {

namespace sql {
class Db;
class ReadSnapshot;
}

int64_t store_schema_version();  // the schema version this build writes

struct StoreOptions {
    bool create = true;          // create the file when it does not exist
    bool read_only = false;      // never write (stats, export); an old schema is then an error
    int busy_timeout_ms = 5000;  // how long a write waits for another process's lock
    int64_t max_page_count = 0;  // > 0: cap the file's size; writing past it fails as a full disk does

    // A store that must exist already (one removed meanwhile is not made again, empty); with
    // read_only, never written.
    static StoreOptions existing(bool read_only = false) {
        StoreOptions o;
        o.create = false;
        o.read_only = read_only;
        return o;
    }
};

struct DocumentFilter {
    std::optional<int64_t> domain_id;
    std::optional<int64_t> layer;  // only this layer's routing is read
    bool routing = true;           // false: token ids only
};

class RoutingStore {
public:
    // Throws moe::Error(input) for a file that is not a routing store, one of a newer schema,
    // a missing file when !create, a read-only file opened for writing; failure when locked.
    static RoutingStore open(const std::string& path, const StoreOptions& opt = {});
    RoutingStore(RoutingStore&&) noexcept;
    RoutingStore& operator=(RoutingStore&&) noexcept;
    ~RoutingStore();

    const std::string& path() const;
    const StoreOptions& options() const;
    int64_t schema_version() const;

    // --- writing (each call is one transaction) ---
    // Returns the id of the model with this content hash and path, adding it (and its vocab) if new.
    int64_t add_model(const ModelRecord& model);
    int64_t add_corpus(const CorpusRecord& corpus);  // by path; updates source/licence
    int64_t add_domain(int64_t corpus_id, const DomainRecord& domain);
    int64_t create_run(const RunSpec& spec);  // status "incomplete"
    // The newest run of this model and trace key with this status, if any.
    std::optional<int64_t> find_run(int64_t model_id, const std::string& trace_key, const std::string& status);
    void finish_run(int64_t run_id, bool complete);
    // Deletes the runs, all or none: each with its documents' routing, aggregates, totals and
    // layers; ablations that took their mask from one keep it, their from_run then NULL. The
    // models, corpora and documents stay (other runs and ablations use them); the space is
    // reused by later runs (VACUUM gives it back to the file system). Input error naming the
    // first id with no run, before anything is deleted. Returns the runs as they were.
    std::vector<RunInfo> delete_runs(const std::vector<int64_t>& run_ids);

    // --- reading ---
    std::vector<RunInfo> runs();
    RunInfo run(int64_t run_id);  // input error naming the id when there is no such run
    std::vector<DocumentKey> finished_documents(int64_t run_id);
    std::vector<AggregateRow> aggregates(int64_t run_id, std::optional<int64_t> domain_id = std::nullopt,
                                         std::optional<int64_t> layer = std::nullopt);
    std::vector<DomainTotal> domain_totals(int64_t run_id);
    std::vector<std::string> vocab(int64_t model_id);  // token text by id; empty when not stored
    // Calls `fn` for each finished document of the run in the order it was finished; memory
    // holds one document at a time. `fn` returns false to stop.
    void for_each_document(int64_t run_id, const DocumentFilter& filter,
                           const std::function<bool(const StoredDocument&)>& fn);
    // One finished document of a run (false when the run has no such document).
    bool read_document(int64_t run_id, int64_t doc_id, const DocumentFilter& filter, StoredDocument& out);
    std::vector<DocumentEntry> documents(int64_t run_id);  // in the order the run finished them
    // PRAGMA integrity_check and foreign_key_check; the problems found, empty when sound.
    std::vector<std::string> check_integrity();

    sql::Db& connection();  // for analysis/ internals (the writer, exports)

private:
    struct Impl;
    explicit RoutingStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// While it lives, the store's reads through `store` see one state of the file, though another
// process commits meanwhile (statistics of a run a trace is writing add up). Nested: the
// outermost counts. For reading only.
class StoreSnapshot {
public:
    explicit StoreSnapshot(RoutingStore& store);
    ~StoreSnapshot();
    StoreSnapshot(const StoreSnapshot&) = delete;
    StoreSnapshot& operator=(const StoreSnapshot&) = delete;

private:
    std::unique_ptr<sql::ReadSnapshot> s_;
};

// Current time as ISO 8601 UTC ("2025-01-31T12:00:00Z"), as the store records times.
std::string utc_now_iso8601();

}  // namespace moe::analysis
