// The trace job: corpus discovery and reading (directories of domains, single files, GSM8K's
// question/answer lines) with clear errors; a trace stores exactly what the routing observer
// reports (token ids, experts, gate weights, entropy, across context windows); the per-domain
// token budget; resuming after a stop; crash safety of `moewb trace` killed with SIGKILL at
// random points (the store stays sound, finished documents whole, and the resumed trace ends
// with the aggregates of an uninterrupted one); Ctrl-C (SIGINT) stops cleanly.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QElapsedTimer>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <chrono>
#include <cstring>
#include <limits>
#include <thread>

#include "analysis/corpus.h"
#include "analysis/fingerprint.h"
#include "analysis/trace_runner.h"
#include "engine/tokenizer.h"
#include "tests/checkpoint_damage.h"
#include "tests/test_store_support.h"

using namespace moe::analysis;

namespace {

const QString kMoewb = QStringLiteral(MOE_BINARY_DIR "/app/moewb");

void write_text(const QString& path, const QByteArray& bytes) {
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(bytes);
}

// Aggregates by (domain name, layer, expert): count, rank-0 count, gate weight sum.
using AggMap = std::map<std::tuple<std::string, int64_t, int64_t>, std::tuple<int64_t, int64_t, double>>;
AggMap aggregates_by_name(RoutingStore& store, int64_t run_id) {
    std::map<int64_t, std::string> names;
    for (const DomainTotal& t : store.domain_totals(run_id)) names[t.domain_id] = t.domain;
    AggMap out;
    for (const AggregateRow& a : store.aggregates(run_id))
        out[{names[a.domain_id], a.layer, a.expert}] = {a.count, a.rank0_count, a.gate_weight_sum.value_or(0)};
    return out;
}

QString compare_aggregates(const AggMap& a, const AggMap& b) {
    if (a.size() != b.size()) return QString("%1 vs %2 aggregate rows").arg(a.size()).arg(b.size());
    for (const auto& [key, va] : a) {
        auto it = b.find(key);
        if (it == b.end()) return "missing cell";
        const auto& vb = it->second;
        if (std::get<0>(va) != std::get<0>(vb) || std::get<1>(va) != std::get<1>(vb))
            return QString("counts differ at %1/%2/%3")
                .arg(QString::fromStdString(std::get<0>(key)))
                .arg(std::get<1>(key))
                .arg(std::get<2>(key));
        if (std::abs(std::get<2>(va) - std::get<2>(vb)) > 1e-9 * std::max(1.0, std::get<2>(va)))
            return "gate weight sums differ";
    }
    return {};
}

// Every finished document has all the run's layers with T×k experts.
QString documents_whole(RoutingStore& store, int64_t run_id) {
    const RunInfo run = store.run(run_id);
    QString problem;
    store.for_each_document(run_id, {}, [&](const StoredDocument& d) {
        if (d.layers.size() != run.layers.size() && !d.token_ids.empty()) problem = "document with missing layers";
        for (const StoredLayer& l : d.layers)
            if (l.experts.size() != d.token_ids.size() * size_t(l.k) || l.entropy.size() != d.token_ids.size())
                problem = "document with short arrays";
        return problem.isEmpty();
    });
    return problem;
}

}  // namespace

class TraceTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void corpus_directory_of_domains();
    void corpus_single_files();
    void corpus_errors();
    void stores_what_the_observer_reports();
    void steps_within_a_window();
    void token_budget_per_domain();
    void resume_after_stop();
    void rerun_and_new_run();
    void masked_trace();
    void changed_document_refused();
    void cli_trace_stats_export();
    void crash_safety_kill_9();
    void sigint_stops_cleanly();
    void cli_errors();
    void cli_delete_run();
    void non_finite_routing_is_refused();

private:
    QTemporaryDir tmp_;
    std::string config_;
    std::unique_ptr<moe::Model> model_;
    std::optional<moe::Tokenizer> tok_;
    ModelRecord record_;
    QString corpus_;
    QString model_dir_;  // on disk, for the CLI

    TraceResult trace(RoutingStore& store, const TraceOptions& opt, const QString& corpus = {}) {
        const Corpus c = open_corpus((corpus.isEmpty() ? corpus_ : corpus).toStdString(), "test", std::nullopt);
        return run_trace(store, *model_, record_, *tok_, c, opt);
    }
    // ids through the model in windows of `context`, each in forward steps of `step`, into
    // rec (as a trace runs them); how many steps that took.
    int64_t record_windows(const std::vector<int32_t>& ids, size_t context, size_t step, moe::RoutingRecorder& rec) {
        std::vector<float> logits;
        int64_t steps = 0;
        for (size_t w0 = 0; w0 < ids.size(); w0 += context) {
            const size_t wn = std::min(context, ids.size() - w0);
            moe::Session s(*model_);
            moe::ForwardOptions fo;
            fo.observer = &rec;
            fo.all_logits = false;
            for (size_t c0 = 0; c0 < wn; c0 += step, ++steps)
                s.forward(std::span<const int32_t>(ids).subspan(w0 + c0, std::min(step, wn - c0)), fo, logits);
        }
        return steps;
    }
};

void TraceTest::initTestCase() {
    QVERIFY(tmp_.isValid());
    config_ = store_test::tiny_config();
    model_ = store_test::random_model(config_, 11);
    tok_.emplace(moe::Tokenizer::load_dir(store_test::tokenizer_dir()));
    QCOMPARE(int64_t(tok_->vocab_size()), model_->config().vocab_size);
    record_ = describe_model(*model_, &*tok_, "");
    corpus_ = tmp_.path() + "/corpus";
    store_test::write_corpus(corpus_, {"code", "english", "math"}, 5, 20);
}

void TraceTest::corpus_directory_of_domains() {
    // datasets/ layout: domains in the manifest's order, then others by name, then the
    // manifest's external domains (GSM8K) found relative to the corpus's parent.
    const QString dir = tmp_.path() + "/dod/datasets";
    store_test::write_corpus(dir, {"b_dom", "a_dom", "c_dom"}, 3, 5);
    write_text(dir + "/notes/readme.txt", "not a domain: no test.jsonl");
    write_text(tmp_.path() + "/dod/shared/qa/test.jsonl", "{\"question\": \"Q?\", \"answer\": \"A\"}\n");
    write_text(tmp_.path() + "/dod/shared/qa/train.jsonl", "{\"question\": \"T?\", \"answer\": \"B\"}\n");
    write_text(dir + "/manifest.json",
               R"({"domains": [{"name": "c_dom", "licence": "GPL-2+", "source": {"package": "foo", "version": "1.2-3"}},
                               {"name": "gone", "licence": "MIT"}],
                   "external": [{"name": "qa", "path": "shared/qa", "origin": "https://example.org/qa", "licence": "MIT"},
                                {"name": "absent", "path": "shared/absent", "licence": "MIT"}]})");
    const Corpus c = open_corpus(dir.toStdString(), "test", std::nullopt);
    std::vector<std::string> names;
    for (const auto& d : c.domains) names.push_back(d.name);
    QCOMPARE(names, (std::vector<std::string>{"c_dom", "a_dom", "b_dom", "qa"}));
    QCOMPARE(c.domains[0].licence, std::string("GPL-2+"));
    QCOMPARE(c.domains[0].source, std::string("Debian package foo 1.2-3"));
    QCOMPARE(c.domains[3].source, std::string("https://example.org/qa"));
    QCOMPARE(c.name, std::string("datasets"));
    const auto docs = read_documents(c.domains[2]);
    QCOMPARE(docs.size(), size_t{3});
    QCOMPARE(docs[0].id, std::string("b_dom-0"));
    QCOMPARE(read_documents(c.domains[3])[0].id, std::string("qa-test-0"));
    QCOMPARE(read_documents(c.domains[3])[0].text, std::string("Q?\nA"));
    const Corpus one = open_corpus(dir.toStdString(), "test", std::string("b_dom"));
    QCOMPARE(one.domains.size(), size_t{1});
    QCOMPARE(one.domains[0].name, std::string("b_dom"));
    // The committed datasets/ (and GSM8K beside the checkout, when present).
    const QString datasets = QStringLiteral(MOE_SOURCE_DIR "/datasets");
    if (QFile::exists(datasets + "/manifest.json")) {
        const Corpus d = open_corpus(datasets.toStdString(), "test", std::nullopt);
        QVERIFY(d.domains.size() >= 5);
        QCOMPARE(d.domains[0].name, std::string("english"));
        for (const auto& dom : d.domains) QVERIFY2(!read_documents(dom).empty(), dom.name.c_str());
    }
}

void TraceTest::corpus_single_files() {
    // GSM8K layout: DIR/{train,test}.jsonl with question/answer and no id; ids and the
    // validation split as tools/corpora/corpus.py makes them.
    const QString gsm = tmp_.path() + "/gsm8k";
    write_text(
        gsm + "/test.jsonl",
        "{\"question\": \"Q1?\", \"answer\": \"A1\\n#### 1\"}\n\n{\"question\": \"Q2?\", \"answer\": \"#### 2\"}\n");
    QByteArray train;
    for (int i = 0; i < 45; ++i)
        train += "{\"question\": \"T" + QByteArray::number(i) + "\", \"answer\": \"#### 0\"}\n";
    write_text(gsm + "/train.jsonl", train);
    Corpus c = open_corpus(gsm.toStdString(), "test", std::nullopt);
    QCOMPARE(c.domains.size(), size_t{1});
    QCOMPARE(c.domains[0].name, std::string("gsm8k"));
    auto docs = read_documents(c.domains[0]);
    QCOMPARE(docs.size(), size_t{2});
    QCOMPARE(docs[0].text, std::string("Q1?\nA1\n#### 1"));
    QCOMPARE(docs[0].id, std::string("gsm8k-test-0"));
    QCOMPARE(docs[1].id, std::string("gsm8k-test-1"));  // blank lines are not documents
    docs = read_documents(open_corpus(gsm.toStdString(), "validation", std::nullopt).domains[0]);
    QCOMPARE(docs.size(), size_t{3});  // every 20th: 0, 20, 40
    QCOMPARE(docs[1].id, std::string("gsm8k-train-20"));
    docs = read_documents(open_corpus(gsm.toStdString(), "train", std::nullopt).domains[0]);
    QCOMPARE(docs.size(), size_t{42});
    QCOMPARE(docs[0].id, std::string("gsm8k-train-1"));
    // A .jsonl file: domain from --domain or the stem.
    c = open_corpus((gsm + "/test.jsonl").toStdString(), "test", std::string("math"));
    QCOMPARE(c.domains[0].name, std::string("math"));
    QCOMPARE(read_documents(c.domains[0])[1].id, std::string("test-1"));
    // A plain-text file: one document.
    write_text(tmp_.path() + "/story.txt", QByteArray("Once upon a time \xE2\x80\x94 \xE4\xB8\x80."));
    c = open_corpus((tmp_.path() + "/story.txt").toStdString(), "test", std::nullopt);
    QCOMPARE(c.domains[0].name, std::string("story"));
    docs = read_documents(c.domains[0]);
    QCOMPARE(docs.size(), size_t{1});
    QCOMPARE(docs[0].id, std::string("story"));
    QCOMPARE(docs[0].text, std::string("Once upon a time \xE2\x80\x94 \xE4\xB8\x80."));
    // The shared GSM8K copy, when the checkout has it beside it.
    const QString shared = QStringLiteral(MOE_SOURCE_DIR "/../shared/datasets/gsm8k");
    if (QFile::exists(shared + "/test.jsonl")) {
        for (const auto& [split, n] :
             std::vector<std::pair<std::string, size_t>>{{"test", 1319}, {"validation", 374}, {"train", 7099}}) {
            c = open_corpus(shared.toStdString(), split, std::nullopt);
            QCOMPARE(read_documents(c.domains[0]).size(), n);
        }
    }
}

void TraceTest::corpus_errors() {
    using store_test::error_problem;
    const auto input = moe::ErrorKind::input;
    CHECK_ERROR(input, open_corpus((tmp_.path() + "/nowhere").toStdString(), "test", std::nullopt),
                {"nowhere", "no such corpus"});
    QDir().mkpath(tmp_.path() + "/empty_corpus");
    CHECK_ERROR(input, open_corpus((tmp_.path() + "/empty_corpus").toStdString(), "test", std::nullopt),
                {"not a corpus", "test.jsonl"});
    CHECK_ERROR(input, open_corpus(corpus_.toStdString(), "test", std::string("klingon")),
                {"klingon", "code, english, math"});
    CHECK_ERROR(input, open_corpus(corpus_.toStdString(), "../x", std::nullopt), {"--split"});
    const QString bad = tmp_.path() + "/bad.jsonl";
    write_text(bad, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \n");
    CHECK_ERROR(input, read_documents({"bad", "", "", bad.toStdString(), "bad-", 0, false}),
                {"bad.jsonl:2", "not JSON"});
    write_text(bad, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"a\", \"text\": \"again\"}\n");
    CHECK_ERROR(input, read_documents({"bad", "", "", bad.toStdString(), "bad-", 0, false}),
                {"bad.jsonl:2", "duplicate document id 'a'"});
    write_text(bad, "{\"id\": \"a\", \"body\": \"no text\"}\n");
    CHECK_ERROR(input, read_documents({"bad", "", "", bad.toStdString(), "bad-", 0, false}),
                {"bad.jsonl:1", "no \"text\""});
    write_text(bad, "[1, 2]\n");
    CHECK_ERROR(input, read_documents({"bad", "", "", bad.toStdString(), "bad-", 0, false}),
                {"bad.jsonl:1", "expected a JSON object"});
    write_text(bad, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"caf\xE9\"}\n");
    CHECK_ERROR(input, read_documents({"bad", "", "", bad.toStdString(), "bad-", 0, false}),
                {"bad.jsonl:2", "invalid UTF-8 at byte offset 24 (byte 0xe9)"});
    // A plain-text document that is not UTF-8 (Latin-1 here) is refused, not silently altered.
    const QString latin1 = tmp_.path() + "/latin1.txt";
    write_text(latin1, QByteArray("Once upon a time in a caf\xE9."));
    CHECK_ERROR(input, read_documents({"latin1", "", "", latin1.toStdString(), "latin1-", 0, false}),
                {"latin1.txt", "invalid UTF-8 at byte offset 25 (byte 0xe9)"});
}

void TraceTest::stores_what_the_observer_reports() {
    // A context of 7 cuts every document into windows; positions stay document positions.
    RoutingStore store = RoutingStore::open((tmp_.path() + "/observer.db").toStdString());
    TraceOptions opt;
    opt.context = 7;
    const TraceResult r = trace(store, opt);
    QVERIFY(r.complete);
    QCOMPARE(r.documents_traced, int64_t{15});
    const RunInfo run = store.run(r.run_id);
    QCOMPARE(run.status, std::string("complete"));
    QCOMPARE(run.layers.size(), size_t(model_->config().n_moe_layers()));
    QCOMPARE(run.gate_weight_kind, std::optional(moe::GateWeightKind::router_prob));
    QCOMPARE(run.dtype, std::string("F32"));

    const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
    std::map<std::string, std::string> texts;
    for (const auto& d : c.domains)
        for (const auto& doc : read_documents(d)) texts[doc.id] = doc.text;
    int64_t checked = 0;
    std::vector<StoredDocument> docs;
    store.for_each_document(r.run_id, {}, [&](const StoredDocument& d) {
        docs.push_back(d);
        return true;
    });
    QCOMPARE(docs.size(), size_t{15});
    for (const StoredDocument& d : docs) {
        QCOMPARE(d.token_ids, tok_->encode(texts.at(d.name)));
        QCOMPARE(d.text_hash, text_hash(texts.at(d.name)));
        // Run the same windows with a recorder: the store holds exactly what it reports.
        moe::RoutingRecorder rec;
        record_windows(d.token_ids, 7, 7, rec);
        for (const StoredLayer& l : d.layers) {
            const auto& toks = rec.layers().at(l.layer);
            QCOMPARE(toks.size(), d.token_ids.size());
            for (size_t t = 0; t < toks.size(); ++t) {
                for (size_t r2 = 0; r2 < size_t(l.k); ++r2) {
                    QCOMPARE(int(l.experts[t * size_t(l.k) + r2]), toks[t].experts[r2]);
                    QCOMPARE(l.gate_weights[t * size_t(l.k) + r2],
                             moe::f16_to_f32(moe::f32_to_f16(toks[t].gate_weights[r2])));
                }
                QCOMPARE(l.entropy[t], moe::f16_to_f32(moe::f32_to_f16(toks[t].entropy)));  // stored as binary16
            }
        }
        ++checked;
    }
    QCOMPARE(checked, int64_t{15});
    QVERIFY(store_test::aggregates_mismatch(store, r.run_id).isEmpty());
    QVERIFY(store.check_integrity().empty());
}

void TraceTest::steps_within_a_window() {
    // step_tokens (moewb trace --step-tokens): each window runs in forward steps of that many
    // tokens — the progress callback, called after each step, sees them — and the store holds
    // what a recorder reports for the same windows in the same steps.
    RoutingStore store = RoutingStore::open((tmp_.path() + "/steps.db").toStdString());
    TraceOptions opt;
    opt.context = 12;
    opt.step_tokens = 5;
    int64_t steps = 0, done = 0;
    opt.progress = [&](const TraceProgress& p) {
        if (p.tokens_done != done) ++steps;
        done = p.tokens_done;
        return true;
    };
    const TraceResult r = trace(store, opt);
    QVERIFY(r.complete);
    int64_t want_steps = 0, checked = 0;
    store.for_each_document(r.run_id, {}, [&](const StoredDocument& d) {
        moe::RoutingRecorder rec;
        want_steps += record_windows(d.token_ids, 12, 5, rec);
        for (const StoredLayer& l : d.layers) {
            const auto& toks = rec.layers().at(l.layer);
            for (size_t t = 0; t < toks.size(); ++t)
                for (size_t k = 0; k < size_t(l.k); ++k) {
                    if (int(l.experts[t * size_t(l.k) + k]) != toks[t].experts[k]) return false;
                    if (l.gate_weights[t * size_t(l.k) + k] !=
                        moe::f16_to_f32(moe::f32_to_f16(toks[t].gate_weights[k])))
                        return false;
                }
        }
        ++checked;
        return true;
    });
    QCOMPARE(checked, r.documents_traced);
    QCOMPARE(steps, want_steps);
}

void TraceTest::token_budget_per_domain() {
    RoutingStore store = RoutingStore::open((tmp_.path() + "/budget.db").toStdString());
    TraceOptions opt;
    opt.max_tokens = 50;
    const TraceResult r = trace(store, opt);
    QVERIFY(r.complete);
    std::map<std::string, int64_t> tokens;
    for (const DocumentEntry& e : store.documents(r.run_id)) tokens[e.domain] += e.n_tokens;
    QCOMPARE(tokens.size(), size_t{3});
    for (const auto& [domain, n] : tokens) QCOMPARE(n, int64_t{50});
    for (const DomainTotal& t : store.domain_totals(r.run_id)) QCOMPARE(t.tokens, int64_t{50});
}

void TraceTest::resume_after_stop() {
    RoutingStore full = RoutingStore::open((tmp_.path() + "/resume_full.db").toStdString());
    const TraceResult a = trace(full, {});
    QVERIFY(a.complete);

    RoutingStore store = RoutingStore::open((tmp_.path() + "/resume.db").toStdString());
    TraceOptions stop;
    stop.progress = [](const TraceProgress& p) { return p.documents_done < 4; };
    const TraceResult b = trace(store, stop);
    QVERIFY(b.stopped);
    QVERIFY(!b.complete);
    QCOMPARE(b.documents_traced, int64_t{4});
    QCOMPARE(store.run(b.run_id).status, std::string("incomplete"));
    QCOMPARE(store.run(b.run_id).n_documents, int64_t{4});

    const TraceResult c = trace(store, {});
    QVERIFY(c.resumed);
    QVERIFY(c.complete);
    QCOMPARE(c.run_id, b.run_id);
    QCOMPARE(c.documents_skipped, int64_t{4});
    QCOMPARE(c.documents_traced, int64_t{11});
    QCOMPARE(store.run(c.run_id).status, std::string("complete"));
    const QString diff = compare_aggregates(aggregates_by_name(full, a.run_id), aggregates_by_name(store, c.run_id));
    QVERIFY2(diff.isEmpty(), qPrintable(diff));
}

void TraceTest::rerun_and_new_run() {
    RoutingStore store = RoutingStore::open((tmp_.path() + "/rerun.db").toStdString());
    TraceOptions opt;
    opt.max_tokens = 20;
    const TraceResult a = trace(store, opt);
    const TraceResult b = trace(store, opt);
    QVERIFY(b.already_complete);
    QCOMPARE(b.run_id, a.run_id);
    QCOMPARE(b.documents_traced, int64_t{0});
    opt.new_run = true;
    const TraceResult c = trace(store, opt);
    QVERIFY(c.run_id != a.run_id);
    QVERIFY(c.complete);
    // A different setting is a different trace.
    TraceOptions other;
    other.max_tokens = 21;
    QVERIFY(trace(store, other).run_id != a.run_id);
    QCOMPARE(store.runs().size(), size_t{3});
    // The same model is stored once, with its vocab.
    const std::vector<std::string> vocab = store.vocab(store.run(a.run_id).model_id);
    QCOMPARE(vocab.size(), size_t{958});
    // A token that is part of a character (a lone byte of the byte-level alphabet) keeps its
    // byte, written <0xXX>; every stored text is UTF-8.
    int escaped = 0;
    for (int32_t id = 0; id < 958; ++id) {
        const std::string& text = vocab[static_cast<size_t>(id)];
        QCOMPARE(text, moe::utf8_escape_invalid(tok_->token_text(id)));
        QCOMPARE(moe::utf8_replace_invalid(text), text);
        escaped += text.starts_with("<0x") ? 1 : 0;
    }
    QVERIFY(escaped >= 64);  // at least the 64 continuation bytes 0x80..0xBF
}

void TraceTest::masked_trace() {
    // The mask's k per layer is the run's k; switched-off experts (reroute) are never stored.
    RoutingStore store = RoutingStore::open((tmp_.path() + "/masked.db").toStdString());
    const moe::ExpertMask mask = moe::ExpertMask::parse("*:0,3;L1:k=2", model_->config(), moe::MaskMode::reroute);
    TraceOptions opt;
    opt.mask = &mask;
    opt.max_tokens = 40;
    const TraceResult r = trace(store, opt);
    QVERIFY(r.complete);
    const RunInfo run = store.run(r.run_id);
    QCOMPARE(run.mask_spec, mask.spec());
    QCOMPARE(run.mask_mode, std::string("reroute"));
    QCOMPARE(run.layer(1)->k, int64_t{2});
    QCOMPARE(run.layer(2)->k, model_->config().num_experts_per_tok);
    for (const AggregateRow& a : store.aggregates(r.run_id)) QVERIFY(a.expert != 0 && a.expert != 3);
    QVERIFY(store_test::aggregates_mismatch(store, r.run_id).isEmpty());
    // Unmasked, the same settings are another trace.
    TraceOptions plain;
    plain.max_tokens = 40;
    QVERIFY(trace(store, plain).run_id != r.run_id);
}

void TraceTest::changed_document_refused() {
    const QString dir = tmp_.path() + "/changing";
    store_test::write_corpus(dir, {"dom"}, 4, 10);
    RoutingStore store = RoutingStore::open((tmp_.path() + "/changing.db").toStdString());
    TraceOptions stop;
    stop.progress = [](const TraceProgress& p) { return p.documents_done < 2; };
    trace(store, stop, dir);
    store_test::write_corpus(dir, {"dom"}, 4, 10, /*seed*/ 99);  // same ids, other texts
    CHECK_ERROR(moe::ErrorKind::input, trace(store, {}, dir), {"dom-0", "changed since run", "--new-run"});
}

void TraceTest::cli_trace_stats_export() {
    model_dir_ = tmp_.path() + "/model";
    QVERIFY(store_test::write_model_dir(model_dir_, config_, 11));
    const QString db = tmp_.path() + "/cli.db";
    QProcess p;
    p.start(kMoewb, {"trace", "--model", model_dir_, "--corpus", corpus_, "--db", db, "--threads", "1", "--json"});
    QVERIFY(p.waitForFinished(60000));
    const QString err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 0, qPrintable(err));
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["status"].get<std::string>(), std::string("complete"));
    QCOMPARE(j["documents_traced"].get<int>(), 15);
    QVERIFY2(err.contains("tok/s") && err.contains("ETA"), qPrintable(err));  // the progress line

    p.start(kMoewb, {"stats", "--db", db, "--runs"});
    QVERIFY(p.waitForFinished(30000));
    QCOMPARE(p.exitCode(), 0);
    const auto runs = nlohmann::json::parse(p.readAllStandardOutput().toStdString())["runs"];
    QCOMPARE(runs.size(), size_t{1});
    QCOMPARE(runs[0]["source"].get<std::string>(), std::string("cpu"));
    QCOMPARE(runs[0]["gate_weight_kind"].get<std::string>(), std::string("router_prob"));
    QCOMPARE(runs[0]["model"].get<std::string>(), std::string("model"));
}

void TraceTest::crash_safety_kill_9() {
    // A larger model so that a trace takes long enough to be killed in the middle.
    // (about a second of tracing: 72 documents, 10k tokens, hidden size 256)
    const std::string cfg = store_test::tiny_config(
        {{"hidden_size", 256}, {"intermediate_size", 512}, {"moe_intermediate_size", 128}, {"num_hidden_layers", 4}});
    const QString model = tmp_.path() + "/crash_model";
    QVERIFY(store_test::write_model_dir(model, cfg, 5));
    const QString corpus = tmp_.path() + "/crash_corpus";
    store_test::write_corpus(corpus, {"alpha", "beta", "gamma"}, 24, 80, 3);
    const QStringList args{"trace",     "--model", model,     "--corpus",  corpus,
                           "--threads", "1",       "--quiet", "--context", "48"};

    // The uninterrupted trace, timed.
    const QString ref_db = tmp_.path() + "/crash_ref.db";
    QElapsedTimer timer;
    timer.start();
    QProcess p;
    p.start(kMoewb, args + QStringList{"--db", ref_db});
    QVERIFY(p.waitForFinished(120000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const qint64 full_ms = std::max<qint64>(timer.elapsed(), 50);

    const QString db = tmp_.path() + "/crash.db";
    std::mt19937 rng(20240607);
    int killed_mid_run = 0;
    for (int round = 0; round < 6; ++round) {
        QProcess child;
        child.start(kMoewb, args + QStringList{"--db", db});
        QVERIFY(child.waitForStarted());
        const int delay = static_cast<int>(std::uniform_int_distribution<qint64>(full_ms / 20, full_ms * 3 / 10)(rng));
        if (!child.waitForFinished(delay)) {
            ::kill(static_cast<pid_t>(child.processId()), SIGKILL);
            QVERIFY(child.waitForFinished(30000));
        }
        // (It may also have finished on its own just before the kill: then it exited 0.)
        QVERIFY(child.exitStatus() == QProcess::CrashExit || child.exitCode() == 0);
        if (!QFile::exists(db)) continue;  // killed before the store was created
        RoutingStore store = RoutingStore::open(db.toStdString());
        const auto problems = store.check_integrity();
        QVERIFY2(problems.empty(), problems.empty() ? "" : problems.front().c_str());
        for (const RunInfo& run : store.runs()) {
            QVERIFY(run.status == "incomplete" || run.status == "complete");
            const QString whole = documents_whole(store, run.run_id);
            QVERIFY2(whole.isEmpty(), qPrintable(whole));
            const QString agg = store_test::aggregates_mismatch(store, run.run_id);
            QVERIFY2(agg.isEmpty(), qPrintable(agg));
            QCOMPARE(run.n_documents, int64_t(store.documents(run.run_id).size()));
            killed_mid_run += run.status == "incomplete";
        }
        QVERIFY(store.runs().size() <= 1);  // every round resumed the same run
    }
    qInfo("killed with the run incomplete in %d of 6 rounds (full trace %lld ms)", killed_mid_run, full_ms);
    // The last, uninterrupted resume finishes the run with the reference's aggregates.
    p.start(kMoewb, args + QStringList{"--db", db, "--json"});
    QVERIFY(p.waitForFinished(120000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    RoutingStore ref = RoutingStore::open(ref_db.toStdString());
    RoutingStore store = RoutingStore::open(db.toStdString());
    QCOMPARE(store.runs().size(), size_t{1});
    const RunInfo run = store.runs().front();
    QCOMPARE(run.status, std::string("complete"));
    QCOMPARE(run.n_tokens, ref.runs().front().n_tokens);
    const QString diff = compare_aggregates(aggregates_by_name(ref, 1), aggregates_by_name(store, run.run_id));
    QVERIFY2(diff.isEmpty(), qPrintable(diff));
}

void TraceTest::sigint_stops_cleanly() {
    const std::string cfg = store_test::tiny_config(
        {{"hidden_size", 128}, {"intermediate_size", 256}, {"moe_intermediate_size", 64}, {"num_hidden_layers", 4}});
    const QString model = tmp_.path() + "/int_model";
    QVERIFY(store_test::write_model_dir(model, cfg, 6));
    const QString corpus = tmp_.path() + "/int_corpus";
    store_test::write_corpus(corpus, {"one", "two"}, 40, 80, 4);
    const QString db = tmp_.path() + "/int.db";
    const QStringList args{"trace", "--model", model, "--corpus", corpus, "--db", db, "--threads", "1", "--json"};
    QProcess child;
    child.start(kMoewb, args);
    QVERIFY(child.waitForStarted());
    // Interrupt once the run exists and has finished a document.
    bool interrupted = false;
    for (int i = 0; i < 600 && child.state() == QProcess::Running; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (!QFile::exists(db)) continue;
        try {
            StoreOptions ro;
            ro.read_only = true;
            RoutingStore s = RoutingStore::open(db.toStdString(), ro);
            const auto runs = s.runs();
            if (!runs.empty() && runs.front().n_documents > 0) {
                ::kill(static_cast<pid_t>(child.processId()), SIGINT);
                interrupted = true;
                break;
            }
        } catch (const moe::Error&) {
            // created but not yet initialised
        }
    }
    QVERIFY(child.waitForFinished(60000));
    if (!interrupted) QSKIP("the trace finished before it could be interrupted");
    QCOMPARE(child.exitStatus(), QProcess::NormalExit);
    QCOMPARE(child.exitCode(), 130);
    QVERIFY(child.readAllStandardError().contains("interrupted"));
    const auto j = nlohmann::json::parse(child.readAllStandardOutput().toStdString());
    QCOMPARE(j["status"].get<std::string>(), std::string("incomplete"));
    QVERIFY(j["interrupted"].get<bool>());
    {
        RoutingStore s = RoutingStore::open(db.toStdString());
        QVERIFY(s.check_integrity().empty());
        QCOMPARE(s.runs().front().status, std::string("incomplete"));
        QCOMPARE(s.runs().front().n_documents, j["documents_traced"].get<int64_t>());
    }
    QProcess again;
    again.start(kMoewb, args);
    QVERIFY(again.waitForFinished(120000));
    QCOMPARE(again.exitCode(), 0);
    const auto k = nlohmann::json::parse(again.readAllStandardOutput().toStdString());
    QVERIFY(k["resumed"].get<bool>());
    QCOMPARE(k["documents_skipped"].get<int64_t>(), j["documents_traced"].get<int64_t>());
    QCOMPARE(k["status"].get<std::string>(), std::string("complete"));
}

void TraceTest::cli_errors() {
    struct Case {
        QStringList args;
        int code;
        QString needle;
    };
    const QString notes = tmp_.path() + "/notes.txt";
    write_text(notes, QByteArray("plain notes, not a store\n").repeated(100));
    const QString db = tmp_.path() + "/cli.db";  // made by cli_trace_stats_export
    const QString empty = tmp_.path() + "/empty.jsonl", blank = tmp_.path() + "/blank.jsonl";
    write_text(empty, QByteArray());
    write_text(blank, QByteArray("{\"id\": \"a\", \"text\": \"\"}\n"));  // its BOS alone
    const size_t runs_before = RoutingStore::open(db.toStdString()).runs().size();
    const std::vector<Case> cases = {
        {{"stats", "--db", notes, "--csv", tmp_.path() + "/x.csv"}, 2, "not a MoE Workbench routing store"},
        {{"export", "--db", notes, "--run", "1", "--tokens", "--csv", tmp_.path() + "/x.csv"},
         2,
         "not a MoE Workbench routing store"},
        {{"stats", "--db", tmp_.path() + "/absent.db", "--csv", "-"}, 2, "no such routing store"},
        {{"stats", "--db", db}, 2, "nothing asked"},
        {{"stats", "--db", db, "--runs", "--csv", "-"}, 2, "both go to standard output"},
        {{"stats", "--db", db, "--run", "99", "--csv", "-"}, 2, "no run 99"},
        {{"stats", "--db", db, "--run", "1", "--layer", "0", "--csv", "-"}, 2, "not a MoE layer"},
        {{"stats", "--db", db, "--run", "1", "--csv", tmp_.path()}, 2, "is a directory"},
        {{"export", "--db", db, "--run", "1", "--tokens", "--csv", tmp_.path()}, 2, "is a directory"},
        {{"export", "--db", db, "--run", "1", "--csv", "-"}, 2, "exactly one of"},
        {{"trace", "--model", model_dir_, "--corpus", tmp_.path() + "/nowhere", "--db", db}, 2, "no such corpus"},
        {{"trace", "--model", model_dir_, "--corpus", corpus_, "--db", notes}, 2, "not a MoE Workbench routing store"},
        {{"trace", "--model", model_dir_, "--corpus", corpus_}, 2, "--db"},
        {{"trace", "--model", model_dir_, "--corpus", tmp_.path() + "/latin1.txt", "--db", db}, 2, "invalid UTF-8"},
        {{"trace", "--model", model_dir_, "--corpus", tmp_.path() + "/latin1.txt", "--db", tmp_.path() + "/never.db"},
         2,
         "invalid UTF-8"},
        {{"trace", "--model", model_dir_, "--corpus", tmp_.path() + "/bad.jsonl", "--db", tmp_.path() + "/never.db"},
         2,
         "bad.jsonl:2: invalid UTF-8 at byte offset 24 (byte 0xe9)"},
        {{"trace", "--model", model_dir_, "--corpus", corpus_, "--db", tmp_.path() + "/never.db", "--context", "0"},
         2,
         "--context"},
        // No token in the corpus: no run of nothing (which would be "complete" for the next try).
        {{"trace", "--model", model_dir_, "--corpus", empty, "--db", db}, 2, "empty.jsonl: no text to run"},
        {{"ablate", "--model", model_dir_, "--corpus", empty, "--mask", "*:shared"}, 2, "empty.jsonl: no text to run"},
        {{"ablate", "--model", model_dir_, "--corpus", blank, "--mask", "*:shared"},
         2,
         "blank.jsonl: nothing to predict"},
    };
    for (const Case& c : cases) {
        QProcess p;
        p.start(kMoewb, c.args);
        QVERIFY(p.waitForFinished(60000));
        const QString err = p.readAllStandardError();
        QVERIFY2(p.exitCode() == c.code,
                 qPrintable(c.args.join(' ') + ": exit " + QString::number(p.exitCode()) + " " + err));
        QVERIFY2(err.contains(c.needle), qPrintable(c.args.join(' ') + ": " + err));
    }
    QVERIFY(!QFile::exists(tmp_.path() + "/x.csv"));
    QVERIFY(!QFile::exists(tmp_.path() + "/x.csv.partial"));
    QVERIFY(!QFile::exists(tmp_.path() + "/never.db"));  // a bad argument or document makes no store
    // The refused traces (a corpus that is not UTF-8 among them) left no run behind.
    QCOMPARE(RoutingStore::open(db.toStdString()).runs().size(), runs_before);
}

void TraceTest::non_finite_routing_is_refused() {
    // NaN in a checkpoint's router (layer 1): the router still picks k experts, with weights
    // that are not numbers. The trace refuses to store that as the model's routing: exit 2,
    // naming the model, the document and the layer; the run stays incomplete.
    const QString dir = tmp_.path() + "/nan_router";
    QVERIFY(store_test::write_model_dir(dir, config_, 11));
    Safetensors st = Safetensors::read(dir + "/model.safetensors");
    const auto& t = st.header["model.layers.1.mlp.gate.weight"];
    const quint64 begin = t["data_offsets"][0].get<quint64>(), end = t["data_offsets"][1].get<quint64>();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (quint64 at = begin; at < end; at += 4) std::memcpy(st.data.data() + at, &nan, 4);
    QVERIFY(st.write(dir + "/model.safetensors"));
    const QString db = tmp_.path() + "/nan.db";
    QProcess p;
    p.start(kMoewb, {"trace", "--model", dir, "--corpus", corpus_, "--db", db, "--max-tokens", "40"});
    QVERIFY(p.waitForFinished(60000));
    const QString err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 2, qPrintable(err));
    QVERIFY2(err.contains(dir + "/config.json") && err.contains("layer 1") && err.contains("not numbers"),
             qPrintable(err));
    const auto runs = RoutingStore::open(db.toStdString()).runs();
    QCOMPARE(runs.size(), size_t{1});
    QCOMPARE(runs[0].status, std::string("incomplete"));
}

void TraceTest::cli_delete_run() {
    // Two traces into a store; `moewb delete-run` takes one out whole and keeps the other;
    // a bad id deletes nothing, an incomplete run needs --force, and ids are not reused.
    const QString db = tmp_.path() + "/delete.db";
    auto moewb = [](const QStringList& args, QString* out = nullptr, QString* err = nullptr) {
        QProcess p;
        p.start(kMoewb, args);
        if (!p.waitForFinished(120000)) return -1;
        if (out) *out = p.readAllStandardOutput();
        if (err) *err = p.readAllStandardError();
        return p.exitCode();
    };
    for (const char* budget : {"30", "40"})
        QCOMPARE(moewb({"trace", "--model", model_dir_, "--corpus", corpus_, "--db", db, "--max-tokens", budget, "--quiet"}), 0);
    std::vector<RunInfo> runs = RoutingStore::open(db.toStdString()).runs();
    QCOMPARE(runs.size(), size_t{2});
    const int64_t first = runs[0].run_id, second = runs[1].run_id;
    QString out, err;

    QCOMPARE(moewb({"delete-run", "--db", db, "--run", QString("%1,99").arg(first)}, &out, &err), 2);
    QVERIFY2(err.contains("no run 99") && out.isEmpty(), qPrintable(err));
    QCOMPARE(RoutingStore::open(db.toStdString()).runs().size(), size_t{2});
    QCOMPARE(moewb({"delete-run", "--db", db, "--run", "x"}, &out, &err), 2);
    QVERIFY2(err.contains("--run"), qPrintable(err));
    QCOMPARE(moewb({"delete-run", "--db", tmp_.path() + "/absent.db", "--run", "1"}, &out, &err), 2);
    QVERIFY2(err.contains("no such routing store"), qPrintable(err));
    QVERIFY(!QFile::exists(tmp_.path() + "/absent.db"));

    QCOMPARE(moewb({"delete-run", "--db", db, "--run", QString::number(first)}, &out, &err), 0);
    const auto j = nlohmann::json::parse(out.toStdString());
    QCOMPARE(j["deleted"].size(), size_t{1});
    QCOMPARE(j["deleted"][0]["run_id"].get<int64_t>(), first);
    QCOMPARE(j["deleted"][0]["tokens"].get<int64_t>(), runs[0].n_tokens);
    {
        RoutingStore s = RoutingStore::open(db.toStdString());
        QCOMPARE(s.runs().size(), size_t{1});
        QCOMPARE(s.runs()[0].run_id, second);
        QVERIFY(s.check_integrity().empty());
    }
    // The other run's statistics read as before.
    QCOMPARE(moewb({"stats", "--db", db, "--run", QString::number(second), "--csv", "-"}, &out, &err), 0);
    QVERIFY(out.count("\r\n") > 1);

    // An incomplete run (a trace may be writing it) only with --force.
    {
        RoutingStore s = RoutingStore::open(db.toStdString());
        s.finish_run(second, false);
    }
    QCOMPARE(moewb({"delete-run", "--db", db, "--run", QString::number(second)}, &out, &err), 2);
    QVERIFY2(err.contains("incomplete") && err.contains("--force"), qPrintable(err));
    QCOMPARE(moewb({"delete-run", "--db", db, "--run", QString::number(second), "--force"}, &out, &err), 0);
    QVERIFY(RoutingStore::open(db.toStdString()).runs().empty());

    // The next trace gets a new id.
    QCOMPARE(moewb({"trace", "--model", model_dir_, "--corpus", corpus_, "--db", db, "--max-tokens", "30", "--quiet"}), 0);
    runs = RoutingStore::open(db.toStdString()).runs();
    QCOMPARE(runs.size(), size_t{1});
    QCOMPARE(runs[0].run_id, second + 1);
}

QTEST_GUILESS_MAIN(TraceTest)
#include "test_trace.moc"
