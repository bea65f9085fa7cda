// Schema version 1 of the routing store and the migration runner; see schema.h and
// docs/store.md. Packed arrays are little-endian: experts uint16 [n_tokens, k], gate weights
// IEEE binary16 [n_tokens, k], entropy float32 [n_tokens], token ids int32 [n_tokens].
#include "analysis/store/schema.h"

#include <string>

#include "engine/error.h"

namespace moe::analysis::schema {

namespace {

const char* kVersion1 = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE models (
  model_id            INTEGER PRIMARY KEY,
  name                TEXT NOT NULL,
  path                TEXT NOT NULL,
  architecture        TEXT NOT NULL,
  config_json         TEXT NOT NULL,
  content_hash        TEXT NOT NULL,
  n_layers            INTEGER NOT NULL,
  n_routed_experts    INTEGER NOT NULL,
  n_shared_experts    INTEGER NOT NULL,
  num_experts_per_tok INTEGER NOT NULL,
  vocab_size          INTEGER NOT NULL,
  added               TEXT NOT NULL,
  UNIQUE (content_hash, path)
);

CREATE TABLE vocab (
  model_id INTEGER NOT NULL REFERENCES models(model_id) ON DELETE CASCADE,
  token_id INTEGER NOT NULL,
  text     TEXT NOT NULL,
  PRIMARY KEY (model_id, token_id)
) WITHOUT ROWID;

CREATE TABLE corpora (
  corpus_id INTEGER PRIMARY KEY,
  name      TEXT NOT NULL,
  path      TEXT NOT NULL UNIQUE,
  source    TEXT NOT NULL DEFAULT '',
  licence   TEXT NOT NULL DEFAULT ''
);

CREATE TABLE domains (
  domain_id INTEGER PRIMARY KEY,
  corpus_id INTEGER NOT NULL REFERENCES corpora(corpus_id) ON DELETE CASCADE,
  name      TEXT NOT NULL,
  source    TEXT NOT NULL DEFAULT '',
  licence   TEXT NOT NULL DEFAULT '',
  UNIQUE (corpus_id, name)
);

CREATE TABLE documents (
  doc_id    INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(domain_id) ON DELETE CASCADE,
  split     TEXT NOT NULL DEFAULT '',
  name      TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  n_bytes   INTEGER NOT NULL,
  UNIQUE (domain_id, split, name, text_hash)
);

CREATE TABLE runs (
  run_id           INTEGER PRIMARY KEY,
  model_id         INTEGER NOT NULL REFERENCES models(model_id),
  corpus_id        INTEGER REFERENCES corpora(corpus_id),
  source           TEXT NOT NULL,
  dtype            TEXT NOT NULL DEFAULT '',
  mask_spec        TEXT NOT NULL DEFAULT '',
  mask_mode        TEXT NOT NULL DEFAULT 'reroute',
  gate_weight_kind TEXT CHECK (gate_weight_kind IN ('router_prob', 'renormalized')),
  gate_weight_format TEXT CHECK (gate_weight_format IN ('f16', 'f32')),
  has_entropy      INTEGER NOT NULL DEFAULT 1,
  split            TEXT NOT NULL DEFAULT '',
  context          INTEGER NOT NULL DEFAULT 0,
  max_tokens       INTEGER NOT NULL DEFAULT 0,
  trace_key        TEXT NOT NULL DEFAULT '',
  status           TEXT NOT NULL CHECK (status IN ('incomplete', 'complete')),
  started          TEXT NOT NULL,
  finished         TEXT,
  n_documents      INTEGER NOT NULL DEFAULT 0,
  n_tokens         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_key ON runs(model_id, trace_key);

CREATE TABLE run_layers (
  run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  layer    INTEGER NOT NULL,
  n_expert INTEGER NOT NULL,
  k        INTEGER NOT NULL,
  PRIMARY KEY (run_id, layer)
) WITHOUT ROWID;

CREATE TABLE run_documents (
  run_id    INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  doc_id    INTEGER NOT NULL REFERENCES documents(doc_id),
  seq       INTEGER NOT NULL,
  n_tokens  INTEGER NOT NULL,
  truncated INTEGER NOT NULL DEFAULT 0,
  token_ids BLOB NOT NULL,
  PRIMARY KEY (run_id, doc_id),
  UNIQUE (run_id, seq)
);

CREATE TABLE routing (
  run_id       INTEGER NOT NULL,
  doc_id       INTEGER NOT NULL,
  layer        INTEGER NOT NULL,
  k            INTEGER NOT NULL,
  experts      BLOB NOT NULL,
  gate_weights BLOB,
  entropy      BLOB,
  PRIMARY KEY (run_id, doc_id, layer),
  FOREIGN KEY (run_id, doc_id) REFERENCES run_documents(run_id, doc_id) ON DELETE CASCADE
);

CREATE TABLE domain_totals (
  run_id      INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  domain_id   INTEGER NOT NULL REFERENCES domains(domain_id),
  layer       INTEGER NOT NULL,
  documents   INTEGER NOT NULL,
  tokens      INTEGER NOT NULL,
  entropy_sum REAL,
  PRIMARY KEY (run_id, domain_id, layer)
) WITHOUT ROWID;

CREATE TABLE aggregates (
  run_id          INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  domain_id       INTEGER NOT NULL REFERENCES domains(domain_id),
  layer           INTEGER NOT NULL,
  expert          INTEGER NOT NULL,
  count           INTEGER NOT NULL,
  rank0_count     INTEGER NOT NULL,
  gate_weight_sum REAL,
  PRIMARY KEY (run_id, domain_id, layer, expert)
) WITHOUT ROWID;
)sql";

// Version 2: ablation results, and compact formats for new runs' routing rows. A baseline is one (model, corpus, split, domains, budget,
// context, backend, dtype) evaluation; every ablation refers to the baseline it was scored
// against, and both keep per-domain sums so means and ratios are exact.
const char* kVersion2 = R"sql(
CREATE TABLE ablation_baselines (
  baseline_id INTEGER PRIMARY KEY,
  model_id    INTEGER NOT NULL REFERENCES models(model_id),
  corpus_id   INTEGER NOT NULL REFERENCES corpora(corpus_id),
  split       TEXT NOT NULL DEFAULT '',
  max_tokens  INTEGER NOT NULL DEFAULT 0,
  context     INTEGER NOT NULL,
  source      TEXT NOT NULL,
  dtype       TEXT NOT NULL DEFAULT '',
  eval_key    TEXT NOT NULL,
  created     TEXT NOT NULL,
  UNIQUE (model_id, eval_key)
);

CREATE TABLE ablation_baseline_domains (
  baseline_id  INTEGER NOT NULL REFERENCES ablation_baselines(baseline_id) ON DELETE CASCADE,
  domain_id    INTEGER NOT NULL REFERENCES domains(domain_id),
  tokens       INTEGER NOT NULL,
  baseline_nll REAL NOT NULL,
  PRIMARY KEY (baseline_id, domain_id)
) WITHOUT ROWID;

CREATE TABLE ablations (
  ablation_id INTEGER PRIMARY KEY,
  baseline_id INTEGER NOT NULL REFERENCES ablation_baselines(baseline_id) ON DELETE CASCADE,
  sweep       TEXT NOT NULL DEFAULT '',
  value       REAL,
  control     TEXT NOT NULL DEFAULT '',
  seed        INTEGER,
  from_run    INTEGER REFERENCES runs(run_id) ON DELETE SET NULL,
  mask_spec   TEXT NOT NULL,
  mask_mode   TEXT NOT NULL CHECK (mask_mode IN ('reroute', 'drop')),
  created     TEXT NOT NULL
);
CREATE INDEX ablations_by_baseline ON ablations(baseline_id);

-- Compact routing rows: expert ids as uint8 when a run's layers have at most 256 experts,
-- entropy as binary16. Runs written by version 1 keep uint16 / float32.
ALTER TABLE runs ADD COLUMN experts_format TEXT NOT NULL DEFAULT 'u16' CHECK (experts_format IN ('u8', 'u16'));
ALTER TABLE runs ADD COLUMN entropy_format TEXT CHECK (entropy_format IN ('f16', 'f32'));
UPDATE runs SET entropy_format = 'f32' WHERE has_entropy = 1;

-- The serving engine's reported version for runs captured from SGLang / vLLM ('' otherwise).
ALTER TABLE runs ADD COLUMN engine_version TEXT NOT NULL DEFAULT '';

CREATE TABLE ablation_domains (
  ablation_id INTEGER NOT NULL REFERENCES ablations(ablation_id) ON DELETE CASCADE,
  domain_id   INTEGER NOT NULL REFERENCES domains(domain_id),
  tokens      INTEGER NOT NULL,
  ablated_nll REAL NOT NULL,
  kl_sum      REAL NOT NULL,
  top1_agree  INTEGER NOT NULL,
  PRIMARY KEY (ablation_id, domain_id)
) WITHOUT ROWID;
)sql";

const Migration kMigrations[] = {
    {1, kVersion1},
    {2, kVersion2},
};

}  // namespace

std::span<const Migration> migrations() {
    return kMigrations;
}
int64_t latest_version() {
    return kMigrations[std::size(kMigrations) - 1].version;
}

Header read_header(sql::Db& db) {
    Header h;
    sql::ReadSnapshot snapshot(db, "reading the store header");  // another process may be creating it
    h.application_id = db.pragma_int("application_id");
    h.user_version = db.pragma_int("user_version");
    sql::Stmt s(db, "SELECT count(*) FROM sqlite_master", "reading the store's schema");
    if (s.step()) h.n_schema_objects = s.int64(0);
    return h;
}

void check_header(const sql::Db& db, const Header& h, int64_t latest) {
    const bool empty = h.application_id == 0 && h.user_version == 0 && h.n_schema_objects == 0;
    if (empty) return;
    if (h.application_id != kApplicationId) {
        throw_input_error(db.path(),
                          "not a MoE Workbench routing store: an SQLite database of another kind "
                          "(application_id " +
                              std::to_string(h.application_id) + ", " + std::to_string(h.n_schema_objects) +
                              " schema objects)");
    }
    if (h.user_version > latest) {
        throw_input_error(db.path(), "routing store schema version " + std::to_string(h.user_version) +
                                         " is newer than this build reads (up to " + std::to_string(latest) +
                                         "); use a newer MoE Workbench");
    }
}

void check_and_migrate(sql::Db& db, bool writable, std::span<const Migration> list) {
    MOE_ASSERT(!list.empty());
    const int64_t latest = list.back().version;
    Header h = read_header(db);
    check_header(db, h, latest);
    if (h.user_version == latest) return;
    if (!writable) {
        if (h.n_schema_objects == 0)
            throw_input_error(db.path(), "empty file, not a routing store yet (nothing to read)");
        throw_input_error(db.path(), "routing store schema version " + std::to_string(h.user_version) +
                                         " must be upgraded to " + std::to_string(latest) +
                                         "; open it once with write access");
    }
    sql::Transaction tx(db, "upgrading the store schema");
    h = read_header(db);  // another process may have migrated while we waited for the lock
    check_header(db, h, latest);
    if (h.user_version == latest) return;
    if (h.user_version == 0) db.exec("PRAGMA application_id = " + std::to_string(kApplicationId), "creating the store");
    for (const Migration& m : list) {
        if (m.version <= h.user_version) continue;
        db.exec(m.sql, "upgrading the store schema");
        db.exec("PRAGMA user_version = " + std::to_string(m.version), "upgrading the store schema");
    }
    tx.commit();
}

void remember_deleted_id(sql::Db& db, const char* key, int64_t highest, const char* doing) {
    if (highest <= 0) return;
    sql::Stmt m(db,
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                doing);
    m.bind(1, key).bind(2, std::to_string(highest));
    m.run();
}

std::string next_id_sql(const char* table, const char* column, const char* key) {
    return std::string("1 + max(coalesce((SELECT max(") + column + ") FROM " + table +
           "), 0), coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '" + key + "'), 0))";
}

}  // namespace moe::analysis::schema
