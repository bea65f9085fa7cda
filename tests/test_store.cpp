// The routing store: what is written is what is read (gate weights to binary16), the
// aggregates equal a recomputation from the per-token rows and sum to tokens × k, captured
// runs without gate weights or entropy, the schema header and forward migrations, and the
// clear errors: not a store, a newer schema, read-only, locked by another process, disk full.
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "analysis/expert_stats.h"
#include "analysis/store/schema.h"
#include "analysis/store/sqlite_db.h"
#include "analysis/trace_writer.h"
#include "tests/test_store_support.h"

using namespace moe::analysis;
using store_test::make_run;
using store_test::synthetic_document;

namespace {

const std::vector<RunLayer> kLayers = {{1, 8, 2}, {2, 8, 2}, {3, 16, 3}};

// Runs raw SQL on a file with a separate connection (as another program would).
void raw_sql(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    QVERIFY2(rc == SQLITE_OK, err ? err : "?");
    sqlite3_close(db);
}


}  // namespace

class StoreTest : public QObject {
    Q_OBJECT
private slots:
    void round_trip();
    void deleting_runs();
    void wide_layers_and_version1_formats();
    void aggregates_equal_rows();
    void statistics_of_a_run_being_written();
    void queue_bound_batches();
    void captured_run_without_weights();
    void expert_id_out_of_range();
    void schema_header();
    void forward_migrations();
    void not_a_store();
    void other_sqlite_database_untouched();
    void newer_schema();
    void missing_store_for_reading();
    void read_only();
    void locked();
    void opened_at_once_by_many();
    void disk_full();

private:
    QTemporaryDir tmp_;
    std::string path(const char* name) { return (tmp_.path() + "/" + name).toStdString(); }
};

void StoreTest::deleting_runs() {
    // Three runs with routing; an ablation took its mask from the second. Deleting the second
    // takes its documents' routing, aggregates, totals and layers with it and leaves the others
    // whole; the ablation stays, without its from_run; the id is never given again.
    const std::string p = path("deleting_runs.db");
    RoutingStore store = RoutingStore::open(p);
    std::vector<int64_t> ids;
    for (int r = 0; r < 3; ++r) {
        const auto sr = make_run(store, kLayers);
        const RunInfo run = store.run(sr.run_id);
        TraceWriter w(store, sr.run_id);
        for (int i = 0; i < 3; ++i)
            w.submit(synthetic_document(run, sr.domain_ids[i % 2], "doc" + std::to_string(i), 6 + i, r * 10 + i));
        w.finish();
        store.finish_run(sr.run_id, true);
        ids.push_back(sr.run_id);
    }
    raw_sql(p, "INSERT INTO ablation_baselines (model_id, corpus_id, context, source, eval_key, created) "
               "SELECT model_id, corpus_id, 64, 'cpu', 'k', 'now' FROM runs LIMIT 1; "
               "INSERT INTO ablations (baseline_id, from_run, mask_spec, mask_mode, created) "
               "VALUES (1, " + std::to_string(ids[1]) + ", 'L1:0', 'reroute', 'now');");
    auto count = [&](const char* table, int64_t run) {
        return std::stoll(store_test::raw_text(p, std::string("SELECT count(*) FROM ") + table + " WHERE run_id = " +
                                                      std::to_string(run)));
    };
    const RunInfo second = store.run(ids[1]);
    for (const char* t : {"routing", "aggregates", "domain_totals", "run_layers", "run_documents"})
        QVERIFY2(count(t, ids[1]) > 0, t);
    const store_test::Recomputed first_before = store_test::recompute(p, ids[0]);

    // An id with no run: nothing is deleted.
    CHECK_ERROR(moe::ErrorKind::input, store.delete_runs({ids[1], 99}), {"no run 99", "deleting_runs.db"});
    QCOMPARE(store.runs().size(), size_t{3});

    const std::vector<RunInfo> gone = store.delete_runs({ids[1]});
    QCOMPARE(gone.size(), size_t{1});
    QCOMPARE(gone[0].run_id, ids[1]);
    QCOMPARE(gone[0].n_tokens, second.n_tokens);
    QCOMPARE(store.runs().size(), size_t{2});
    for (const char* t : {"routing", "aggregates", "domain_totals", "run_layers", "run_documents"})
        QVERIFY2(count(t, ids[1]) == 0, t);
    QCOMPARE(store_test::raw_text(p, "SELECT coalesce(from_run, 'null') || ' ' || mask_spec FROM ablations"),
             std::string("null L1:0"));
    QVERIFY(store.check_integrity().empty());
    // The other runs are untouched: their rows and aggregates as before.
    const store_test::Recomputed first_after = store_test::recompute(p, ids[0]);
    QVERIFY(first_after.cells == first_before.cells && first_after.totals == first_before.totals);
    QCOMPARE(store_test::aggregates_mismatch(store, ids[0]), QString());
    QCOMPARE(store_test::aggregates_mismatch(store, ids[2]), QString());

    // Deleting the newest run does not make its id the next one's.
    store.delete_runs({ids[2]});
    const auto fresh = make_run(store, kLayers);
    const int64_t next = fresh.run_id;
    QCOMPARE(next, ids[2] + 1);
    QCOMPARE(store.runs().size(), size_t{2});

    // A run deleted by another process while a trace writes it: the trace fails saying so.
    const RunInfo doomed = store.run(next);
    TraceWriter w(store, next);
    w.submit(synthetic_document(doomed, fresh.domain_ids[0], "d0", 5, 1));
    RoutingStore::open(p).delete_runs({next});
    CHECK_ERROR(moe::ErrorKind::failure,
                {
                    w.submit(synthetic_document(doomed, fresh.domain_ids[0], "d1", 5, 2));
                    w.finish();
                },
                {"run " + QString::number(next) + " was deleted", "deleting_runs.db"});
    QVERIFY(store.check_integrity().empty());
}

void StoreTest::round_trip() {
    const std::string p = path("round_trip.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 2, true, true, {"a", "b,c", "\"q\""});
    const RunInfo run = store.run(sr.run_id);
    QCOMPARE(run.status, std::string("incomplete"));
    QCOMPARE(run.layers.size(), kLayers.size());
    QCOMPARE(run.gate_weight_format, std::string("f16"));
    QCOMPARE(run.experts_format, std::string("u8"));  // E <= 256: one byte per expert id
    QCOMPARE(run.entropy_format, std::string("f16"));
    std::vector<std::unique_ptr<DocumentRouting>> expected;
    {
        TraceWriter w(store, sr.run_id);
        for (int i = 0; i < 6; ++i) {
            auto d = synthetic_document(run, sr.domain_ids[i % 2], "doc" + std::to_string(i), 5 + 7 * i, i);
            expected.push_back(std::make_unique<DocumentRouting>(*d));
            w.submit(std::move(d));
        }
        w.finish();
        QCOMPARE(w.stats().documents, 6);
    }
    store.finish_run(sr.run_id, true);
    QCOMPARE(store.run(sr.run_id).status, std::string("complete"));
    QVERIFY(!store.run(sr.run_id).finished.empty());

    std::vector<StoredDocument> stored;
    store.for_each_document(sr.run_id, {}, [&](const StoredDocument& d) {
        stored.push_back(d);
        return true;
    });
    QCOMPARE(stored.size(), expected.size());
    for (size_t i = 0; i < stored.size(); ++i) {
        const StoredDocument& d = stored[i];
        const DocumentRouting& e = *expected[i];
        QCOMPARE(d.name, e.name);
        QCOMPARE(d.domain_id, e.domain_id);
        QCOMPARE(d.split, e.split);
        QCOMPARE(d.text_hash, e.text_hash);
        QCOMPARE(d.token_ids, e.token_ids);
        QCOMPARE(d.layers.size(), e.layers.size());
        for (size_t l = 0; l < d.layers.size(); ++l) {
            QCOMPARE(d.layers[l].layer, e.layers[l].layer);
            QCOMPARE(d.layers[l].k, e.layers[l].k);
            QCOMPARE(d.layers[l].experts.size(), e.layers[l].experts.size());
            for (size_t j = 0; j < d.layers[l].experts.size(); ++j) {
                QCOMPARE(int(d.layers[l].experts[j]), e.layers[l].experts[j]);
                // binary16: the stored value is the float rounded to 11 significant bits
                QCOMPARE(d.layers[l].gate_weights[j], moe::f16_to_f32(moe::f32_to_f16(e.layers[l].gate_weights[j])));
                QVERIFY(std::abs(d.layers[l].gate_weights[j] - e.layers[l].gate_weights[j]) <=
                        e.layers[l].gate_weights[j] / 2048);
            }
            // entropy is binary16 too
            QCOMPARE(d.layers[l].entropy.size(), e.layers[l].entropy.size());
            for (size_t t = 0; t < d.layers[l].entropy.size(); ++t)
                QCOMPARE(d.layers[l].entropy[t], moe::f16_to_f32(moe::f32_to_f16(e.layers[l].entropy[t])));
        }
    }
    QCOMPARE(store.vocab(run.model_id), (std::vector<std::string>{"a", "b,c", "\"q\""}));
    QVERIFY(store.check_integrity().empty());

    // The layer filter reads one layer only.
    DocumentFilter f;
    f.layer = 3;
    std::vector<int64_t> layers_read;
    store.for_each_document(sr.run_id, f, [&](const StoredDocument& d) {
        for (const StoredLayer& l : d.layers) layers_read.push_back(l.layer);
        return false;
    });
    QCOMPARE(layers_read, std::vector<int64_t>{3});
}

void StoreTest::wide_layers_and_version1_formats() {
    // A layer with more than 256 experts stores uint16 ids; a run written by schema 1 (float32
    // entropy) reads back exactly. Aggregates equal the rows in both.
    const std::string p = path("wide.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, {{1, 300, 4}, {2, 8, 2}}, 1);
    raw_sql(p, "UPDATE runs SET entropy_format = 'f32' WHERE run_id = " + std::to_string(sr.run_id));
    const RunInfo run = store.run(sr.run_id);
    QCOMPARE(run.experts_format, std::string("u16"));
    QCOMPARE(run.entropy_format, std::string("f32"));
    std::vector<std::unique_ptr<DocumentRouting>> expected;
    {
        TraceWriter w(store, sr.run_id);
        for (int i = 0; i < 3; ++i) {
            auto d = synthetic_document(run, sr.domain_ids[0], "w" + std::to_string(i), 40 + i, 100 + i);
            for (int32_t& e : d->layers[0].experts) e = (e * 37 + 299) % 300;  // ids above 255 too
            expected.push_back(std::make_unique<DocumentRouting>(*d));
            w.submit(std::move(d));
        }
        w.finish();
    }
    size_t i = 0;
    bool above_255 = false;
    store.for_each_document(sr.run_id, {}, [&](const StoredDocument& d) {
        const DocumentRouting& e = *expected[i++];
        for (size_t l = 0; l < d.layers.size(); ++l) {
            for (size_t j = 0; j < d.layers[l].experts.size(); ++j) {
                if (int(d.layers[l].experts[j]) != e.layers[l].experts[j]) return false;
                above_255 |= d.layers[l].experts[j] > 255;
            }
            if (d.layers[l].entropy != e.layers[l].entropy) return false;  // float32: exact
        }
        return true;
    });
    QCOMPARE(i, expected.size());
    QVERIFY(above_255);
    const QString mismatch = store_test::aggregates_mismatch(store, sr.run_id);
    QVERIFY2(mismatch.isEmpty(), qPrintable(mismatch));
}

void StoreTest::aggregates_equal_rows() {
    const std::string p = path("aggregates.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 3);
    const RunInfo run = store.run(sr.run_id);
    {
        TraceWriterOptions o;
        o.batch_decisions = 100;  // many transactions, so the upserts accumulate
        TraceWriter w(store, sr.run_id, o);
        for (int i = 0; i < 30; ++i)
            w.submit(
                synthetic_document(run, sr.domain_ids[i % 3], "d" + std::to_string(i), 1 + (i * 13) % 40, 100 + i));
        w.submit(synthetic_document(run, sr.domain_ids[0], "empty", 0, 7));
        w.finish();
        QVERIFY(w.stats().transactions > 1);
    }
    const QString mismatch = store_test::aggregates_mismatch(store, sr.run_id);
    QVERIFY2(mismatch.isEmpty(), qPrintable(mismatch));
    const RunInfo after = store.run(sr.run_id);
    QCOMPARE(after.n_documents, int64_t{31});
    int64_t tokens = 0;
    for (const DocumentEntry& e : store.documents(sr.run_id)) tokens += e.n_tokens;
    QCOMPARE(after.n_tokens, tokens);

    // The share table: every expert of every layer per domain; shares of a layer sum to 1.
    const auto shares = expert_shares(store, sr.run_id);
    QCOMPARE(shares.size(), size_t{3 * (8 + 8 + 16)});
    std::map<std::pair<std::string, int64_t>, double> sums;
    for (const ExpertShare& s : shares) {
        sums[{s.domain, s.layer}] += s.share;
        QCOMPARE(s.ratio_to_uniform, s.share * double(s.n_expert));
        if (s.count) QCOMPARE(*s.mean_gate_weight, *s.gate_weight_sum / double(s.count));
    }
    for (const auto& [key, sum] : sums) QVERIFY(std::abs(sum - 1.0) < 1e-12);
}

void StoreTest::statistics_of_a_run_being_written() {
    // Another connection (a second process: `moewb stats` while a trace writes) reads the
    // shares over and over while documents are committed: every reading adds up, each
    // layer's counts summing to its tokens x k, though a commit falls between its queries.
    const std::string p = path("live.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 2);
    const RunInfo run = store.run(sr.run_id);
    std::atomic<bool> done{false};
    std::thread writer([&] {
        RoutingStore w_store = RoutingStore::open(p);
        TraceWriterOptions o;
        o.batch_decisions = 1;  // a commit per document
        TraceWriter w(w_store, sr.run_id, o);
        for (int i = 0; i < 300; ++i)
            w.submit(synthetic_document(run, sr.domain_ids[i % 2], "d" + std::to_string(i), 3 + i % 7, 500 + i));
        w.finish();
        done = true;
    });
    RoutingStore reader = RoutingStore::open(p);
    int readings = 0;
    QString bad;
    while (bad.isEmpty() && (!done || readings == 0)) {
        std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> sums;  // (domain, layer) -> count, tokens*k
        for (const ExpertShare& s : expert_shares(reader, sr.run_id)) {
            auto& [count, expected] = sums[{s.domain_id, s.layer}];
            count += s.count;
            expected = s.tokens * s.k;
        }
        for (const auto& [key, v] : sums)
            if (v.first != v.second)
                bad = QString("reading %1: domain %2 layer %3: counts %4, tokens x k %5")
                          .arg(readings).arg(key.first).arg(key.second).arg(v.first).arg(v.second);
        ++readings;
    }
    writer.join();
    QVERIFY2(bad.isEmpty(), qPrintable(bad));
    QVERIFY(readings > 1);
}

void StoreTest::queue_bound_batches() {
    // A queue bound smaller than one document: the producer waits for the writer and every
    // document still arrives, in order.
    const std::string p = path("queue.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 1);
    const RunInfo run = store.run(sr.run_id);
    TraceWriterOptions o;
    o.queue_bytes = 1;
    {
        TraceWriter w(store, sr.run_id, o);
        for (int i = 0; i < 20; ++i)
            w.submit(synthetic_document(run, sr.domain_ids[0], "q" + std::to_string(i), 50, i));
        w.finish();
    }
    std::vector<std::string> names;
    for (const DocumentEntry& e : store.documents(sr.run_id)) names.push_back(e.name);
    QCOMPARE(names.size(), size_t{20});
    for (int i = 0; i < 20; ++i) QCOMPARE(names[size_t(i)], "q" + std::to_string(i));
    QVERIFY(store_test::aggregates_mismatch(store, sr.run_id).isEmpty());
}

void StoreTest::captured_run_without_weights() {
    const std::string p = path("captured.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 2, false, false, {}, "sglang");
    const RunInfo run = store.run(sr.run_id);
    QVERIFY(!run.has_gate_weights());
    QVERIFY(!run.has_entropy);
    QCOMPARE(run.source, std::string("sglang"));
    {
        TraceWriter w(store, sr.run_id);
        for (int i = 0; i < 4; ++i)
            w.submit(synthetic_document(run, sr.domain_ids[i % 2], "c" + std::to_string(i), 20, i));
        w.finish();
    }
    QVERIFY(store_test::aggregates_mismatch(store, sr.run_id).isEmpty());
    for (const AggregateRow& a : store.aggregates(sr.run_id)) QVERIFY(!a.gate_weight_sum);
    for (const ExpertShare& s : expert_shares(store, sr.run_id)) {
        QVERIFY(!s.gate_weight_sum);
        QVERIFY(!s.mean_gate_weight);
    }
    int64_t with_values = 0;
    store.for_each_document(sr.run_id, {}, [&](const StoredDocument& d) {
        for (const StoredLayer& l : d.layers) with_values += !l.gate_weights.empty() || !l.entropy.empty();
        return true;
    });
    QCOMPARE(with_values, int64_t{0});
    CHECK_ERROR(moe::ErrorKind::input, entropy_means(store, sr.run_id), {"needs router entropy", "sglang"});
    CHECK_ERROR(moe::ErrorKind::input, require_gate_weights(run, "mean gate weight"), {"needs gate weights", "sglang"});
}

void StoreTest::expert_id_out_of_range() {
    // Captured ids come from outside: an id ≥ E is an input error, and nothing of the batch is written.
    const std::string p = path("bad_ids.db");
    RoutingStore store = RoutingStore::open(p);
    const auto sr = make_run(store, kLayers, 1, false, false, {}, "sglang");
    const RunInfo run = store.run(sr.run_id);
    auto bad = synthetic_document(run, sr.domain_ids[0], "bad", 4, 1);
    bad->layers[2].experts[5] = 16;
    TraceWriter w(store, sr.run_id);
    w.submit(synthetic_document(run, sr.domain_ids[0], "good", 4, 2));
    w.submit(std::move(bad));
    CHECK_ERROR(moe::ErrorKind::input, w.finish(), {"document 'bad', layer 3: expert id 16 outside 0..15"});
    QVERIFY(store.documents(sr.run_id).size() <= 1);
    QVERIFY(store_test::aggregates_mismatch(store, sr.run_id).isEmpty());
}

void StoreTest::schema_header() {
    const std::string p = path("header.db");
    {
        RoutingStore store = RoutingStore::open(p);
        QCOMPARE(store.schema_version(), store_schema_version());
    }
    QCOMPARE(store_test::raw_text(p, "PRAGMA application_id"), std::to_string(schema::kApplicationId));
    QCOMPARE(store_test::raw_text(p, "PRAGMA user_version"), std::to_string(store_schema_version()));
    QCOMPARE(store_test::raw_text(p, "PRAGMA journal_mode"), std::string("wal"));
    RoutingStore store = RoutingStore::open(p);
    sql::Db& db = store.connection();
    QCOMPARE(db.pragma_int("foreign_keys"), int64_t{1});
    // Foreign keys hold: a routing row for a document the run never finished is refused.
    CHECK_ERROR(
        moe::ErrorKind::failure,
        db.exec("INSERT INTO routing (run_id, doc_id, layer, k, experts) VALUES (99, 99, 1, 1, x'0000')", "test"),
        {"FOREIGN KEY"});
}

void StoreTest::forward_migrations() {
    // The runner applies the missing migrations in order, in one transaction, and keeps data.
    const schema::Migration v1[] = {{1, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7);"}};
    const schema::Migration v2[] = {{1, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7);"},
                                    {2, "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'new';"}};
    const std::string p = path("migrate.db");
    {
        sql::Db db(p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 100);
        schema::check_and_migrate(db, true, v1);
        QCOMPARE(db.pragma_int("user_version"), int64_t{1});
    }
    {
        sql::Db db(p, SQLITE_OPEN_READONLY, 100);
        CHECK_ERROR(moe::ErrorKind::input, schema::check_and_migrate(db, false, v2),
                    {"must be upgraded", "write access"});
    }
    {
        sql::Db db(p, SQLITE_OPEN_READWRITE, 100);
        schema::check_and_migrate(db, true, v2);
        QCOMPARE(db.pragma_int("user_version"), int64_t{2});
    }
    QCOMPARE(store_test::raw_text(p, "SELECT a || b FROM t"), std::string("7new"));
    {
        sql::Db db(p, SQLITE_OPEN_READWRITE, 100);
        CHECK_ERROR(moe::ErrorKind::input, schema::check_and_migrate(db, true, v1), {"newer", "version 2"});
    }
    // A failing migration leaves the store as it was.
    const schema::Migration bad[] = {v2[0], v2[1], {3, "CREATE TABLE u (x); THIS IS NOT SQL;"}};
    {
        sql::Db db(p, SQLITE_OPEN_READWRITE, 100);
        QVERIFY(
            !store_test::error_problem([&] { schema::check_and_migrate(db, true, bad); }, moe::ErrorKind::failure, {})
                 .contains("no error"));
        QCOMPARE(db.pragma_int("user_version"), int64_t{2});
    }
    QCOMPARE(store_test::raw_text(p, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"), std::string("0"));
}

void StoreTest::not_a_store() {
    const std::string p = path("notes.txt");
    {
        QFile f(QString::fromStdString(p));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray("These are my notes, not a database. ").repeated(200));
    }
    const QByteArray before = [&] {
        QFile f(QString::fromStdString(p));
        f.open(QIODevice::ReadOnly);
        return f.readAll();
    }();
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p),
                {QString::fromStdString(p), "not a MoE Workbench routing store", "not an SQLite database"});
    StoreOptions ro;
    ro.read_only = true;
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p, ro), {"not a MoE Workbench routing store"});
    QFile f(QString::fromStdString(p));
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(f.readAll(), before);
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(tmp_.path().toStdString()), {"is a directory"});
}

void StoreTest::other_sqlite_database_untouched() {
    const std::string p = path("other.db");
    raw_sql(p, "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');");
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p), {"not a MoE Workbench routing store", "another kind"});
    QCOMPARE(store_test::raw_text(p, "PRAGMA journal_mode"), std::string("delete"));  // not switched to WAL
    QCOMPARE(store_test::raw_text(p, "SELECT name FROM recipes"), std::string("soup"));
}

void StoreTest::newer_schema() {
    const std::string p = path("newer.db");
    { RoutingStore::open(p); }
    raw_sql(p, "PRAGMA user_version = 99");
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p), {"schema version 99", "newer",
                 QString("up to %1").arg(store_schema_version())});
    StoreOptions ro;
    ro.read_only = true;
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p, ro), {"schema version 99"});
}

void StoreTest::missing_store_for_reading() {
    StoreOptions ro;
    ro.read_only = true;
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(path("absent.db"), ro),
                {"absent.db", "no such routing store"});
    StoreOptions no_create;
    no_create.create = false;
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(path("absent.db"), no_create), {"no such routing store"});
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(path("no/such/dir/x.db")), {"cannot open"});
}

void StoreTest::read_only() {
    const std::string p = path("ro.db");
    { RoutingStore::open(p); }
    // Opened for reading (as stats and export do), writing is refused with a clear message.
    StoreOptions ro;
    ro.read_only = true;
    RoutingStore store = RoutingStore::open(p, ro);
    QVERIFY(store.runs().empty());
    CHECK_ERROR(moe::ErrorKind::input, store.add_model(store_test::synthetic_model()), {"read-only", "adding a model"});

    // A file without write permission (root may write anyway, so only checked for others).
    if (geteuid() == 0) QSKIP("running as root: file permissions do not stop writes");
    QFile::setPermissions(QString::fromStdString(p), QFileDevice::ReadOwner);
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p), {"read-only"});
    QFile::setPermissions(QString::fromStdString(p), QFileDevice::ReadOwner | QFileDevice::WriteOwner);
}

void StoreTest::locked() {
    const std::string p = path("locked.db");
    StoreOptions so;
    so.busy_timeout_ms = 50;
    RoutingStore store = RoutingStore::open(p, so);
    const auto sr = make_run(store, kLayers, 1);
    const RunInfo run = store.run(sr.run_id);
    // Another program holds the write lock.
    sqlite3* other = nullptr;
    QCOMPARE(sqlite3_open(p.c_str(), &other), SQLITE_OK);
    QCOMPARE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    CHECK_ERROR(moe::ErrorKind::failure, store.add_model(store_test::synthetic_model()),
                {"locked by another process", "50 ms"});
    {
        TraceWriter w(store, sr.run_id);
        w.submit(synthetic_document(run, sr.domain_ids[0], "x", 10, 1));
        CHECK_ERROR(moe::ErrorKind::failure, w.finish(), {"locked by another process", "writing routing"});
        CHECK_ERROR(moe::ErrorKind::failure, w.submit(synthetic_document(run, sr.domain_ids[0], "y", 10, 2)),
                    {"locked"});
    }
    QCOMPARE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
    // Nothing half-written: the run has no document, and writing works again.
    QCOMPARE(store.run(sr.run_id).n_documents, int64_t{0});
    {
        TraceWriter w(store, sr.run_id);
        w.submit(synthetic_document(run, sr.domain_ids[0], "x", 10, 1));
        w.finish();
    }
    QCOMPARE(store.run(sr.run_id).n_documents, int64_t{1});
}

void StoreTest::opened_at_once_by_many() {
    // Jobs started together on a store that does not exist yet (a script tracing each domain
    // into one new store): each makes or finds the store, none is refused for the lock.
    constexpr int kJobs = 6, kRounds = 15;
    for (int round = 0; round < kRounds; ++round) {
        const std::string p = path(("together" + std::to_string(round) + ".db").c_str());
        std::atomic<int> ready{0};
        std::vector<std::string> errors(kJobs);
        std::vector<std::thread> jobs;
        for (int j = 0; j < kJobs; ++j)
            jobs.emplace_back([&, j] {
                ready.fetch_add(1);
                while (ready.load() < kJobs) std::this_thread::yield();
                try {
                    RoutingStore store = RoutingStore::open(p);
                    store.add_model(store_test::synthetic_model());
                } catch (const moe::Error& e) {
                    errors[static_cast<size_t>(j)] = e.what();
                }
            });
        for (std::thread& t : jobs) t.join();
        for (const std::string& e : errors) QVERIFY2(e.empty(), e.c_str());
        QCOMPARE(RoutingStore::open(p).connection().pragma_int("user_version"), schema::latest_version());
    }
}

void StoreTest::disk_full() {
    // A page cap makes SQLite fail exactly as a full disk does (SQLITE_FULL).
    const std::string p = path("full.db");
    StoreOptions so;
    so.max_page_count = 200;  // 800 KiB at 4 KiB pages
    int64_t finished = 0;
    {
        RoutingStore store = RoutingStore::open(p, so);
        const auto sr = make_run(store, kLayers, 2);
        const RunInfo run = store.run(sr.run_id);
        TraceWriterOptions o;
        o.batch_decisions = 1;  // a transaction per document
        TraceWriter w(store, sr.run_id, o);
        const QString problem = store_test::error_problem(
            [&] {
                for (int i = 0; i < 10000; ++i)
                    w.submit(synthetic_document(run, sr.domain_ids[i % 2], "f" + std::to_string(i), 300, i));
                w.finish();
            },
            moe::ErrorKind::failure, {"disk full", "rolled back", QString::fromStdString(p)});
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        finished = store.run(sr.run_id).n_documents;
        QVERIFY(finished > 0);
    }
    // Reopened without the cap: sound, every finished document whole, aggregates consistent.
    RoutingStore store = RoutingStore::open(p);
    QVERIFY(store.check_integrity().empty());
    const RunInfo run = store.runs().front();
    QCOMPARE(run.status, std::string("incomplete"));
    QCOMPARE(int64_t(store.documents(run.run_id).size()), finished);
    QVERIFY(store_test::aggregates_mismatch(store, run.run_id).isEmpty());
    int64_t docs = 0;
    store.for_each_document(run.run_id, {}, [&](const StoredDocument& d) {
        docs += d.layers.size() == kLayers.size();
        return true;
    });
    QCOMPARE(docs, finished);
}

QTEST_GUILESS_MAIN(StoreTest)
#include "test_store.moc"
