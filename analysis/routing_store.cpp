// Opening, checking and the plain reads and writes of the routing store; see
// routing_store.h. The per-document routing is written by analysis/store/document_writer.
#include "analysis/routing_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "analysis/store/packing.h"
#include "analysis/store/schema.h"
#include "analysis/store/sqlite_db.h"
#include "engine/error.h"

namespace moe::analysis {

int64_t store_schema_version() {
    return schema::latest_version();
}

std::string utc_now_iso8601() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

struct RoutingStore::Impl {
    Impl(const std::string& path, int flags, const StoreOptions& o) : db(path, flags, o.busy_timeout_ms), opt(o) {}
    sql::Db db;
    StoreOptions opt;
};

RoutingStore::RoutingStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RoutingStore::RoutingStore(RoutingStore&&) noexcept = default;
RoutingStore& RoutingStore::operator=(RoutingStore&&) noexcept = default;
RoutingStore::~RoutingStore() = default;

RoutingStore RoutingStore::open(const std::string& path, const StoreOptions& opt) {
    namespace fs = std::filesystem;
    if (path.empty()) throw Error(ErrorKind::input, "the routing store's file name is empty");
    std::error_code ec;
    const bool exists = fs::exists(path, ec);
    if (exists && fs::is_directory(path, ec)) throw_input_error(path, "is a directory, not a routing store file");
    if (!exists && (opt.read_only || !opt.create)) throw_input_error(path, "no such routing store");
    const int flags =
        (opt.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    auto impl = std::make_unique<Impl>(path, flags, opt);
    sql::Db& db = impl->db;
    if (!opt.read_only && db.read_only()) {
        throw_input_error(path,
                          "the routing store is read-only (file or directory permissions, or a read-only "
                          "file system); writing to it is needed here");
    }
    // Look before touching anything: another program's database must not be switched to WAL.
    schema::check_header(db, schema::read_header(db), schema::latest_version());
    if (!opt.read_only) db.exec_waiting("PRAGMA journal_mode = WAL", "switching the store to WAL");
    schema::check_and_migrate(db, !opt.read_only, schema::migrations());
    db.exec("PRAGMA foreign_keys = ON", "opening the store");
    db.exec("PRAGMA synchronous = NORMAL", "opening the store");  // WAL: durable across process crashes
    if (opt.max_page_count > 0)
        db.exec("PRAGMA max_page_count = " + std::to_string(opt.max_page_count), "opening the store");
    return RoutingStore(std::move(impl));
}

StoreSnapshot::StoreSnapshot(RoutingStore& store)
    : s_(std::make_unique<sql::ReadSnapshot>(store.connection(), "reading the store")) {}
StoreSnapshot::~StoreSnapshot() = default;

const std::string& RoutingStore::path() const {
    return impl_->db.path();
}
const StoreOptions& RoutingStore::options() const {
    return impl_->opt;
}
int64_t RoutingStore::schema_version() const {
    return impl_->db.pragma_int("user_version");
}
sql::Db& RoutingStore::connection() {
    return impl_->db;
}

int64_t RoutingStore::add_model(const ModelRecord& m) {
    sql::Db& db = impl_->db;
    const char* doing = "adding a model";
    sql::Transaction tx(db, doing);
    int64_t id = 0;
    {
        sql::Stmt find(db, "SELECT model_id FROM models WHERE content_hash = ?1 AND path = ?2", doing);
        find.bind(1, m.content_hash).bind(2, m.path);
        if (find.step()) id = find.int64(0);
    }
    if (!id) {
        sql::Stmt ins(db,
                      "INSERT INTO models (name, path, architecture, config_json, content_hash, n_layers, "
                      "n_routed_experts, n_shared_experts, num_experts_per_tok, vocab_size, added) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                      doing);
        ins.bind(1, m.name).bind(2, m.path).bind(3, m.architecture).bind(4, m.config_json).bind(5, m.content_hash);
        ins.bind(6, m.n_layers).bind(7, m.n_routed_experts).bind(8, m.n_shared_experts);
        ins.bind(9, m.num_experts_per_tok).bind(10, m.vocab_size).bind(11, utc_now_iso8601());
        ins.run();
        id = db.last_insert_rowid();
    }
    if (!m.vocab.empty()) {
        sql::Stmt has(db, "SELECT EXISTS (SELECT 1 FROM vocab WHERE model_id = ?1)", doing);
        has.bind(1, id);
        if (has.step() && has.int64(0) == 0) {
            sql::Stmt ins(db, "INSERT INTO vocab (model_id, token_id, text) VALUES (?1, ?2, ?3)", doing);
            for (size_t i = 0; i < m.vocab.size(); ++i) {
                ins.bind(1, id).bind(2, static_cast<int64_t>(i)).bind(3, m.vocab[i]);
                ins.run();
            }
        }
    }
    tx.commit();
    return id;
}

int64_t RoutingStore::add_corpus(const CorpusRecord& c) {
    sql::Db& db = impl_->db;
    const char* doing = "adding a corpus";
    sql::Transaction tx(db, doing);
    sql::Stmt s(db,
                "INSERT INTO corpora (name, path, source, licence) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT (path) DO UPDATE SET name = excluded.name, source = excluded.source, "
                "licence = excluded.licence RETURNING corpus_id",
                doing);
    s.bind(1, c.name).bind(2, c.path).bind(3, c.source).bind(4, c.licence);
    MOE_ASSERT(s.step());
    const int64_t id = s.int64(0);
    s.reset();
    tx.commit();
    return id;
}

int64_t RoutingStore::add_domain(int64_t corpus_id, const DomainRecord& d) {
    sql::Db& db = impl_->db;
    const char* doing = "adding a domain";
    sql::Transaction tx(db, doing);
    sql::Stmt s(db,
                "INSERT INTO domains (corpus_id, name, source, licence) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT (corpus_id, name) DO UPDATE SET source = excluded.source, licence = excluded.licence "
                "RETURNING domain_id",
                doing);
    s.bind(1, corpus_id).bind(2, d.name).bind(3, d.source).bind(4, d.licence);
    MOE_ASSERT(s.step());
    const int64_t id = s.int64(0);
    s.reset();
    tx.commit();
    return id;
}

int64_t RoutingStore::create_run(const RunSpec& r) {
    MOE_ASSERT(!r.layers.empty());
    sql::Db& db = impl_->db;
    const char* doing = "creating a run";
    sql::Transaction tx(db, doing);
    sql::Stmt ins(db,
                  // A run id is never given twice, not even after that run was deleted.
                  "INSERT INTO runs (run_id, model_id, corpus_id, source, dtype, mask_spec, mask_mode, gate_weight_kind, "
                  "gate_weight_format, has_entropy, split, context, max_tokens, trace_key, status, started, "
                  "experts_format, entropy_format, engine_version) VALUES (" +
                      schema::next_id_sql("runs", "run_id", "last_deleted_run_id") +
                      ", ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'incomplete', ?14, ?15, ?16, ?17)",
                  doing);
    ins.bind(1, r.model_id);
    if (r.corpus_id)
        ins.bind(2, *r.corpus_id);
    else
        ins.bind_null(2);
    ins.bind(3, r.source).bind(4, r.dtype).bind(5, r.mask_spec).bind(6, r.mask_mode);
    if (r.gate_weight_kind) {
        ins.bind(7, std::string_view(gate_weight_kind_name(*r.gate_weight_kind))).bind(8, std::string_view("f16"));
    } else {
        ins.bind_null(7).bind_null(8);
    }
    ins.bind(9, int64_t{r.has_entropy}).bind(10, r.split).bind(11, r.context).bind(12, r.max_tokens);
    ins.bind(13, r.trace_key).bind(14, utc_now_iso8601());
    int64_t max_experts = 0;
    for (const RunLayer& l : r.layers) max_experts = std::max(max_experts, l.n_expert);
    ins.bind(15, std::string_view(max_experts <= 256 ? "u8" : "u16"));
    if (r.has_entropy)
        ins.bind(16, std::string_view("f16"));
    else
        ins.bind_null(16);
    ins.bind(17, r.engine_version);
    ins.run();
    const int64_t id = db.last_insert_rowid();
    sql::Stmt lay(db, "INSERT INTO run_layers (run_id, layer, n_expert, k) VALUES (?1, ?2, ?3, ?4)", doing);
    for (const RunLayer& l : r.layers) {
        MOE_ASSERT(l.n_expert > 0 && l.n_expert <= 65536 && l.k > 0 && l.k <= l.n_expert);
        lay.bind(1, id).bind(2, l.layer).bind(3, l.n_expert).bind(4, l.k);
        lay.run();
    }
    tx.commit();
    return id;
}

std::optional<int64_t> RoutingStore::find_run(int64_t model_id, const std::string& trace_key,
                                              const std::string& status) {
    sql::Stmt s(impl_->db,
                "SELECT run_id FROM runs WHERE model_id = ?1 AND trace_key = ?2 AND status = ?3 "
                "ORDER BY run_id DESC LIMIT 1",
                "looking up a run");
    s.bind(1, model_id).bind(2, trace_key).bind(3, status);
    if (!s.step()) return std::nullopt;
    return s.int64(0);
}

void RoutingStore::finish_run(int64_t run_id, bool complete) {
    sql::Db& db = impl_->db;
    const char* doing = "finishing a run";
    sql::Transaction tx(db, doing);
    sql::Stmt s(db, "UPDATE runs SET status = ?2, finished = ?3 WHERE run_id = ?1", doing);
    s.bind(1, run_id).bind(2, std::string_view(complete ? "complete" : "incomplete"));
    if (complete)
        s.bind(3, utc_now_iso8601());
    else
        s.bind_null(3);
    s.run();
    tx.commit();
}

namespace {

const char* kRunColumns =
    "SELECT r.run_id, r.model_id, r.corpus_id, r.source, r.dtype, r.mask_spec, r.mask_mode, r.gate_weight_kind, "
    "r.has_entropy, r.split, r.context, r.max_tokens, r.trace_key, r.status, r.started, r.finished, "
    "r.n_documents, r.n_tokens, m.name, c.name, r.gate_weight_format, r.experts_format, r.entropy_format, "
    "r.engine_version, m.content_hash "
    "FROM runs r JOIN models m ON m.model_id = r.model_id LEFT JOIN corpora c ON c.corpus_id = r.corpus_id ";

RunInfo read_run_row(const sql::Stmt& s) {
    RunInfo r;
    r.run_id = s.int64(0);
    r.model_id = s.int64(1);
    if (!s.is_null(2)) r.corpus_id = s.int64(2);
    r.source = s.text(3);
    r.dtype = s.text(4);
    r.mask_spec = s.text(5);
    r.mask_mode = s.text(6);
    if (!s.is_null(7))
        r.gate_weight_kind = s.text(7) == "renormalized" ? GateWeightKind::renormalized : GateWeightKind::router_prob;
    r.has_entropy = s.int64(8) != 0;
    r.split = s.text(9);
    r.context = s.int64(10);
    r.max_tokens = s.int64(11);
    r.trace_key = s.text(12);
    r.status = s.text(13);
    r.started = s.text(14);
    r.finished = s.text(15);
    r.n_documents = s.int64(16);
    r.n_tokens = s.int64(17);
    r.model_name = s.text(18);
    r.corpus_name = s.text(19);
    r.gate_weight_format = s.text(20);
    r.experts_format = s.text(21);
    r.entropy_format = s.is_null(22) ? "" : s.text(22);
    r.engine_version = s.text(23);
    r.model_content_hash = s.text(24);
    return r;
}

void read_run_layers(sql::Db& db, RunInfo& r) {
    sql::Stmt s(db, "SELECT layer, n_expert, k FROM run_layers WHERE run_id = ?1 ORDER BY layer", "reading a run");
    s.bind(1, r.run_id);
    while (s.step()) r.layers.push_back({s.int64(0), s.int64(1), s.int64(2)});
}

}  // namespace

std::vector<RunInfo> RoutingStore::runs() {
    std::vector<RunInfo> out;
    sql::Stmt s(impl_->db, std::string(kRunColumns) + "ORDER BY r.run_id", "listing runs");
    while (s.step()) out.push_back(read_run_row(s));
    for (RunInfo& r : out) read_run_layers(impl_->db, r);
    return out;
}

RunInfo RoutingStore::run(int64_t run_id) {
    sql::Stmt s(impl_->db, std::string(kRunColumns) + "WHERE r.run_id = ?1", "reading a run");
    s.bind(1, run_id);
    if (!s.step()) throw_input_error(path(), "no run " + std::to_string(run_id) + " in this store");
    RunInfo r = read_run_row(s);
    read_run_layers(impl_->db, r);
    return r;
}

std::vector<RunInfo> RoutingStore::delete_runs(const std::vector<int64_t>& run_ids) {
    sql::Db& db = impl_->db;
    const char* doing = "deleting runs";
    sql::Transaction tx(db, doing);
    std::vector<RunInfo> gone;
    for (int64_t id : run_ids) gone.push_back(run(id));
    sql::Stmt del(db, "DELETE FROM runs WHERE run_id = ?1", doing);  // the rest by ON DELETE
    int64_t highest = 0;
    for (int64_t id : run_ids) {
        del.bind(1, id);
        del.run();
        highest = std::max(highest, id);
    }
    // The highest id deleted, so that create_run never gives it again.
    schema::remember_deleted_id(db, "last_deleted_run_id", highest, doing);
    tx.commit();
    return gone;
}

std::vector<DocumentKey> RoutingStore::finished_documents(int64_t run_id) {
    std::vector<DocumentKey> out;
    sql::Stmt s(impl_->db,
                "SELECT d.domain_id, d.split, d.name, d.text_hash FROM run_documents rd "
                "JOIN documents d ON d.doc_id = rd.doc_id WHERE rd.run_id = ?1 ORDER BY rd.seq",
                "reading a run's documents");
    s.bind(1, run_id);
    while (s.step()) out.push_back({s.int64(0), s.text(1), s.text(2), s.text(3)});
    return out;
}

std::vector<AggregateRow> RoutingStore::aggregates(int64_t run_id, std::optional<int64_t> domain_id,
                                                   std::optional<int64_t> layer) {
    // One range scan of the primary key (run_id, domain_id, layer, expert) per call.
    std::string q =
        "SELECT domain_id, layer, expert, count, rank0_count, gate_weight_sum FROM aggregates WHERE run_id = ?1";
    if (domain_id) q += " AND domain_id = ?2";
    if (layer) q += " AND layer = ?3";
    q += " ORDER BY domain_id, layer, expert";
    sql::Stmt s(impl_->db, q, "reading aggregates");
    s.bind(1, run_id);
    if (domain_id) s.bind(2, *domain_id);
    if (layer) s.bind(3, *layer);
    std::vector<AggregateRow> out;
    while (s.step()) {
        AggregateRow a{s.int64(0), s.int64(1), s.int64(2), s.int64(3), s.int64(4), std::nullopt};
        if (!s.is_null(5)) a.gate_weight_sum = s.real(5);
        out.push_back(a);
    }
    return out;
}

std::vector<DomainTotal> RoutingStore::domain_totals(int64_t run_id) {
    sql::Stmt s(impl_->db,
                "SELECT t.domain_id, d.name, t.layer, t.documents, t.tokens, t.entropy_sum FROM domain_totals t "
                "JOIN domains d ON d.domain_id = t.domain_id WHERE t.run_id = ?1 ORDER BY d.name, t.domain_id, t.layer",
                "reading domain totals");
    s.bind(1, run_id);
    std::vector<DomainTotal> out;
    while (s.step()) {
        DomainTotal t{s.int64(0), s.text(1), s.int64(2), s.int64(3), s.int64(4), std::nullopt};
        if (!s.is_null(5)) t.entropy_sum = s.real(5);
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<std::string> RoutingStore::vocab(int64_t model_id) {
    sql::Stmt s(impl_->db, "SELECT token_id, text FROM vocab WHERE model_id = ?1 ORDER BY token_id", "reading a vocab");
    s.bind(1, model_id);
    std::vector<std::string> out;
    while (s.step()) {
        const int64_t id = s.int64(0);
        if (id < 0 || id > (1 << 24)) continue;
        if (static_cast<size_t>(id) >= out.size()) out.resize(static_cast<size_t>(id) + 1);
        out[static_cast<size_t>(id)] = s.text(1);
    }
    return out;
}

namespace {

const char* kDocColumns =
    "SELECT rd.doc_id, d.name, d.split, d.text_hash, d.domain_id, dom.name, rd.seq, rd.truncated, rd.n_tokens, "
    "rd.token_ids FROM run_documents rd JOIN documents d ON d.doc_id = rd.doc_id "
    "JOIN domains dom ON dom.domain_id = d.domain_id WHERE rd.run_id = ?1";

// Fills `doc` from a kDocColumns row and (filter.routing) its routing rows; vectors are
// reused from the previous document.
void read_document_rows(sql::Db& db, const RunInfo& run, const sql::Stmt& row, sql::Stmt& routing,
                        const DocumentFilter& filter, StoredDocument& doc) {
    doc.doc_id = row.int64(0);
    doc.name = row.text(1);
    doc.split = row.text(2);
    doc.text_hash = row.text(3);
    doc.domain_id = row.int64(4);
    doc.domain = row.text(5);
    doc.seq = row.int64(6);
    doc.truncated = row.int64(7) != 0;
    const std::string where =
        db.path() + ": run " + std::to_string(run.run_id) + ", document " + std::to_string(doc.doc_id);
    packing::unpack_i32(row.blob(9), doc.token_ids, where + ", token_ids");
    const size_t T = doc.token_ids.size();
    if (static_cast<int64_t>(T) != row.int64(8))
        throw_input_error(where, "token count does not match token_ids (damaged store?)");
    size_t n_layers = 0;
    if (filter.routing) {
        routing.bind(1, run.run_id).bind(2, doc.doc_id);
        if (filter.layer) routing.bind(3, *filter.layer);
        while (routing.step()) {
            if (doc.layers.size() <= n_layers) doc.layers.emplace_back();
            StoredLayer& l = doc.layers[n_layers++];
            l.layer = routing.int64(0);
            l.k = routing.int64(1);
            const std::string lw = where + ", layer " + std::to_string(l.layer);
            if (l.k <= 0 || l.k > 65536) throw_input_error(lw, "k = " + std::to_string(l.k) + " (damaged store?)");
            const size_t K = static_cast<size_t>(l.k);
            if (run.experts_format == "u8")
                packing::unpack_u8(routing.blob(2), T * K, l.experts, lw + ", experts");
            else
                packing::unpack_u16(routing.blob(2), T * K, l.experts, lw + ", experts");
            if (routing.is_null(3))
                l.gate_weights.clear();
            else if (run.gate_weight_format == "f32")
                packing::unpack_f32(routing.blob(3), T * K, l.gate_weights, lw + ", gate_weights");
            else
                packing::unpack_f16(routing.blob(3), T * K, l.gate_weights, lw + ", gate_weights");
            if (routing.is_null(4))
                l.entropy.clear();
            else if (run.entropy_format == "f16")
                packing::unpack_f16(routing.blob(4), T, l.entropy, lw + ", entropy");
            else
                packing::unpack_f32(routing.blob(4), T, l.entropy, lw + ", entropy");
            const RunLayer* rl = run.layer(l.layer);
            if (!rl) throw_input_error(lw, "a layer the run does not list (damaged store?)");
            uint16_t max_expert = 0;
            for (uint16_t e : l.experts) max_expert = std::max(max_expert, e);
            if (!l.experts.empty() && max_expert >= rl->n_expert)
                throw_input_error(lw, "expert id " + std::to_string(max_expert) + " out of range (damaged store?)");
        }
        routing.reset();
    }
    doc.layers.resize(n_layers);
}

std::string routing_query(const DocumentFilter& filter) {
    std::string q = "SELECT layer, k, experts, gate_weights, entropy FROM routing WHERE run_id = ?1 AND doc_id = ?2";
    if (filter.layer) q += " AND layer = ?3";
    return q + " ORDER BY layer";
}

}  // namespace

void RoutingStore::for_each_document(int64_t run_id, const DocumentFilter& filter,
                                     const std::function<bool(const StoredDocument&)>& fn) {
    sql::Db& db = impl_->db;
    const RunInfo info = run(run_id);
    std::string q = kDocColumns;
    if (filter.domain_id) q += " AND d.domain_id = ?2";
    q += " ORDER BY rd.seq";
    sql::Stmt docs(db, q, "reading documents");
    docs.bind(1, run_id);
    if (filter.domain_id) docs.bind(2, *filter.domain_id);
    sql::Stmt rows(db, routing_query(filter), "reading routing");
    StoredDocument doc;  // reused: one document in memory at a time
    while (docs.step()) {
        read_document_rows(db, info, docs, rows, filter, doc);
        if (!fn(doc)) break;
    }
}

bool RoutingStore::read_document(int64_t run_id, int64_t doc_id, const DocumentFilter& filter, StoredDocument& out) {
    sql::Db& db = impl_->db;
    const RunInfo info = run(run_id);
    sql::Stmt doc(db, std::string(kDocColumns) + " AND rd.doc_id = ?2", "reading a document");
    doc.bind(1, run_id).bind(2, doc_id);
    if (!doc.step()) return false;
    sql::Stmt rows(db, routing_query(filter), "reading routing");
    read_document_rows(db, info, doc, rows, filter, out);
    return true;
}

std::vector<DocumentEntry> RoutingStore::documents(int64_t run_id) {
    sql::Stmt s(
        impl_->db,
        "SELECT rd.doc_id, d.domain_id, dom.name, d.split, d.name, d.text_hash, rd.n_tokens FROM run_documents rd "
        "JOIN documents d ON d.doc_id = rd.doc_id JOIN domains dom ON dom.domain_id = d.domain_id "
        "WHERE rd.run_id = ?1 ORDER BY rd.seq",
        "listing a run's documents");
    s.bind(1, run_id);
    std::vector<DocumentEntry> out;
    while (s.step()) out.push_back({s.int64(0), s.int64(1), s.text(2), s.text(3), s.text(4), s.text(5), s.int64(6)});
    return out;
}

std::vector<std::string> RoutingStore::check_integrity() {
    std::vector<std::string> problems;
    {
        sql::Stmt s(impl_->db, "PRAGMA integrity_check", "checking the store");
        while (s.step()) {
            const std::string r = s.text(0);
            if (r != "ok") problems.push_back(r);
        }
    }
    sql::Stmt s(impl_->db, "PRAGMA foreign_key_check", "checking the store");
    while (s.step())
        problems.push_back("foreign key: table " + s.text(0) + " row " + std::to_string(s.int64(1)) +
                           " refers to a missing " + s.text(2) + " row");
    return problems;
}

}  // namespace moe::analysis
