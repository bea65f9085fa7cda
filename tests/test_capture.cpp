// Capture from serving engines: a stand-in SGLang / vLLM server (tests/capture_server.py,
// NumPy payloads, started here on 127.0.0.1 and stopped after each case) for a V3-shaped
// model (61 layers, the first 3 dense, 256 routed experts, top-8). A captured corpus stores
// exactly the payloads' counts for both layer-axis conventions, raw int32/uint16 and .npy
// payloads, prompt-only and with generated tokens; bad answers (wrong row count, expert id
// >= 256, non-zero dense rows, truncated base64, HTTP 500 then success, no routing feature,
// a hanging server) each give a clear error or a retry and never a half-written run; a
// stopped capture resumes; saved responses import to the same counts; the decoders alone.
#include <QProcess>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include "analysis/capture.h"
#include "analysis/corpus_tokens.h"
#include "tests/test_store_support.h"

using namespace moe::analysis;

namespace {

const QString kMoewb = QStringLiteral(MOE_BINARY_DIR "/app/moewb");
const QString kServer = QStringLiteral(MOE_SOURCE_DIR "/tests/capture_server.py");

// The V3 test fixture's config widened to V3's routing shape.
std::string v3_config() {
    std::ifstream in(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/v3_fp8_mtp/config.json");
    nlohmann::json c = nlohmann::json::parse(in);
    c["num_hidden_layers"] = 61;
    c["first_k_dense_replace"] = 3;
    c["n_routed_experts"] = 256;
    c["num_experts_per_tok"] = 8;
    c["n_group"] = 8;
    c["topk_group"] = 4;
    c["vocab_size"] = 958;
    return c.dump(1);
}

// Per (layer, expert): count and rank-0 count over every domain of a run.
using Counts = std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>>;

Counts store_counts(RoutingStore& store, int64_t run_id) {
    Counts out;
    for (const AggregateRow& a : store.aggregates(run_id)) {
        auto& c = out[{a.layer, a.expert}];
        c.first += a.count;
        c.second += a.rank0_count;
    }
    return out;
}

QString compare_with_server(RoutingStore& store, int64_t run_id, const QString& counts_path) {
    QFile f(counts_path);
    if (!f.open(QIODevice::ReadOnly)) return "the server wrote no counts";
    const nlohmann::json j = nlohmann::json::parse(f.readAll().toStdString());
    Counts want;
    for (const auto& [layer, arr] : j["counts"].items())
        for (size_t e = 0; e < arr.size(); ++e)
            if (arr[e].get<int64_t>() > 0)
                want[{std::stoll(layer), int64_t(e)}] = {arr[e].get<int64_t>(),
                                                         j["rank0"][layer][e].get<int64_t>()};
    const Counts got = store_counts(store, run_id);
    if (got != want) return QString("stored counts differ from the payloads' (%1 vs %2 cells)").arg(got.size()).arg(want.size());
    int64_t tokens = 0;
    for (const DomainTotal& t : store.domain_totals(run_id))
        if (t.layer == 3) tokens += t.tokens;
    if (tokens != j["tokens"].get<int64_t>())
        return QString("stored %1 tokens, the payloads had %2 rows").arg(tokens).arg(j["tokens"].get<int64_t>());
    return store_test::aggregates_mismatch(store, run_id);
}

// Every stored document has all 58 MoE layers with T×8 ids, and no gate weights or entropy.
QString documents_whole(RoutingStore& store, int64_t run_id) {
    const RunInfo run = store.run(run_id);
    QString problem;
    store.for_each_document(run_id, {}, [&](const StoredDocument& d) {
        if (d.layers.size() != run.layers.size() && !d.token_ids.empty()) problem = "document with missing layers";
        for (const StoredLayer& l : d.layers)
            if (l.experts.size() != d.token_ids.size() * size_t(l.k) || !l.gate_weights.empty() || !l.entropy.empty())
                problem = "document with wrong arrays";
        return problem.isEmpty();
    });
    return problem;
}

}  // namespace

class CaptureTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void base64_and_npy();
    void layer_axis_detection();
    void sglang_absolute_int32();
    void sglang_uint16_generated();
    void vllm_moe_ordinal();
    void vllm_absolute_split_prompt_generated();
    void vllm_compact_uint8();
    void retry_after_http_500();
    void bad_responses_data();
    void bad_responses();
    void hanging_server_times_out();
    void stop_and_resume();
    void import_saved_responses();
    void cli_capture_and_import();
    void cleanup();

private:
    QTemporaryDir tmp_;
    QString model_dir_, corpus_, config_path_;
    moe::ModelConfig cfg_;
    std::optional<moe::Tokenizer> tok_;
    ModelRecord record_;
    QProcess* server_ = nullptr;
    QString counts_, save_;
    int case_ = 0;

    // Starts the stand-in server; returns its URL ("" on failure).
    QString start(const QStringList& extra) {
        const QString dir = tmp_.path() + QString("/case%1").arg(++case_);
        QDir().mkpath(dir);
        const QString port_file = dir + "/port";
        counts_ = dir + "/counts.json";
        save_ = dir + "/saved.jsonl";
        server_ = new QProcess(this);
        server_->setProcessChannelMode(QProcess::ForwardedErrorChannel);
        server_->start("/usr/bin/python3", QStringList{kServer, "--config", config_path_, "--port-file", port_file,
                                                       "--counts", counts_, "--save", save_} +
                                               extra);
        for (int i = 0; i < 300 && !QFile::exists(port_file); ++i) QThread::msleep(50);
        QFile f(port_file);
        if (!f.open(QIODevice::ReadOnly)) return {};
        return "http://127.0.0.1:" + QString::fromUtf8(f.readAll()).trimmed();
    }
    CaptureOptions options(const QString& url, CaptureEngine engine) {
        CaptureOptions o;
        o.server = url.toStdString();
        o.engine = engine;
        o.context = 64;  // documents of ~40-100 tokens: some take two windows
        o.concurrency = 3;
        o.http.timeout_s = 20;
        o.http.retries = 2;
        o.http.backoff_s = 0.05;
        return o;
    }
    CaptureResult capture(RoutingStore& store, const CaptureOptions& o) {
        const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
        return run_capture(store, cfg_, record_, *tok_, c, o);
    }
    std::string db(const char* name) { return (tmp_.path() + "/" + name).toStdString(); }
};

void CaptureTest::initTestCase() {
    QVERIFY(tmp_.isValid());
    if (!QFile::exists("/usr/bin/python3")) QSKIP("needs /usr/bin/python3 with NumPy for the stand-in server");
    QProcess np;
    np.start("/usr/bin/python3", {"-c", "import numpy"});
    QVERIFY(np.waitForFinished(30000));
    if (np.exitCode() != 0) QSKIP("needs python3-numpy for the stand-in server");
    model_dir_ = tmp_.path() + "/v3-config-only";
    QDir().mkpath(model_dir_);
    config_path_ = model_dir_ + "/config.json";
    { std::ofstream(config_path_.toStdString()) << v3_config(); }
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        QVERIFY(QFile::copy(QString::fromStdString(store_test::tokenizer_dir() + "/" + f), model_dir_ + "/" + f));
    cfg_ = moe::load_model_config(model_dir_.toStdString());
    QCOMPARE(cfg_.n_moe_layers(), int64_t{58});
    tok_.emplace(moe::Tokenizer::load_dir(model_dir_.toStdString()));
    record_ = describe_capture_model(cfg_, *tok_, model_dir_.toStdString());
    QVERIFY(record_.content_hash.rfind("cfg1:", 0) == 0);
    corpus_ = tmp_.path() + "/corpus";
    store_test::write_corpus(corpus_, {"alpha", "beta"}, 3, 30);
}

void CaptureTest::cleanup() {
    if (server_) {
        server_->kill();
        server_->waitForFinished(5000);
        delete server_;
        server_ = nullptr;
    }
}

void CaptureTest::base64_and_npy() {
    const std::string s = "any carnal pleas";
    for (size_t n = 0; n <= s.size(); ++n) {
        const std::string enc = base64_encode(s.data(), n);
        const auto dec = base64_decode(enc, "test");
        QCOMPARE(std::string(dec.begin(), dec.end()), s.substr(0, n));
    }
    QCOMPARE(base64_encode("any carnal pleasure.", 20), std::string("YW55IGNhcm5hbCBwbGVhc3VyZS4="));
    CHECK_ERROR(moe::ErrorKind::input, base64_decode("YW55IGNhcm5hbCBwbGVhc3VyZ", "payload"), {"truncated base64", "payload"});
    CHECK_ERROR(moe::ErrorKind::input, base64_decode("YW55*GNh", "payload"), {"invalid base64", "character 4"});
    // A hand-made .npy v1.0 of int32 [1, 2, 2].
    std::string npy("\x93NUMPY\x01\x00", 8);
    std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 2), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    npy += char(header.size() & 0xFF);
    npy += char(header.size() >> 8);
    npy += header;
    const int32_t vals[4] = {0, 0, 7, 3};
    npy.append(reinterpret_cast<const char*>(vals), 16);
    const RoutingPayload p = decode_npy_routing(base64_encode(npy.data(), npy.size()), "npy");
    QCOMPARE(p.rows, int64_t{1});
    QCOMPARE(p.layers, int64_t{2});
    QCOMPARE(p.k, int64_t{2});
    QCOMPARE(p.ids, (std::vector<int32_t>{0, 0, 7, 3}));
    const std::string cut = npy.substr(0, npy.size() - 4);
    CHECK_ERROR(moe::ErrorKind::input, decode_npy_routing(base64_encode(cut.data(), cut.size()), "npy"),
                {"truncated", "npy"});
    CHECK_ERROR(moe::ErrorKind::input, decode_npy_routing(base64_encode("abcdefghijkl", 12), "npy"), {"NumPy .npy"});
    // Shapes whose sizes overflow 64 bits: refused as input, not wrapped into a small or zero
    // element count (which would let rows × layers × k disagree with the ids).
    auto with_shape = [&](const std::string& shape, size_t data_bytes) {
        std::string h = "{'descr': '<i4', 'fortran_order': False, 'shape': " + shape + ", }";
        while ((10 + h.size() + 1) % 64) h += ' ';
        h += '\n';
        std::string f("\x93NUMPY\x01\x00", 8);
        f += char(h.size() & 0xFF);
        f += char(h.size() >> 8);
        f += h;
        f.append(data_bytes, '\0');
        return base64_encode(f.data(), f.size());
    };
    CHECK_ERROR(moe::ErrorKind::input, decode_npy_routing(with_shape("(99999999999999999999999, 2, 2)", 16), "npy"),
                {"too large"});
    CHECK_ERROR(moe::ErrorKind::input, decode_npy_routing(with_shape("(4294967296, 4294967296, 1)", 0), "npy"),
                {"needs more"});
    CHECK_ERROR(moe::ErrorKind::input, decode_npy_routing(with_shape("(1099511627776, 1099511627776, 16384)", 0), "npy"),
                {"needs more"});
    const RoutingPayload empty = decode_npy_routing(with_shape("(0, 2, 2)", 0), "npy");
    QCOMPARE(empty.rows, int64_t{0});
    QVERIFY(empty.ids.empty());
    // Response bodies with fields of unexpected types: input errors naming the place, never
    // the JSON library's own exceptions.
    for (const char* body : {R"({"choices": [{"text": "x"}], "object": {"a": 1}})", R"({"object": 5, "message": 3})",
                             R"({"meta_info": "x"})", R"({"choices": 7})", R"([1, 2])"})
        for (const CaptureEngine e : {CaptureEngine::sglang, CaptureEngine::vllm})
            CHECK_ERROR(moe::ErrorKind::input, parse_engine_response(e, body, 3, cfg_, "resp"), {"resp"});
    CHECK_ERROR(moe::ErrorKind::input,
                parse_engine_response(CaptureEngine::vllm, R"({"object": "error", "message": "too long"})", 3, cfg_, "resp"),
                {"resp", "too long"});
}

void CaptureTest::layer_axis_detection() {
    // Two layers, the first dense, one MoE layer of 4 experts.
    nlohmann::json c = nlohmann::json::parse(store_test::tiny_config());
    c["num_hidden_layers"] = 2;
    c["first_k_dense_replace"] = 1;
    c["n_routed_experts"] = 4;
    c["num_experts_per_tok"] = 2;
    moe::ModelConfig cfg = moe::parse_model_config(c.dump(), "test config");
    RoutingPayload abs{2, 2, 2, {0, 0, 1, 3, 0, 0, 2, 0}};  // [2 rows, 2 layers, 2]: layer 0 zero
    RoutingPayload moe_{2, 2, 2, {1, 3, 0, 0, 2, 0, 0, 0}};  // layer 1 zero
    QCOMPARE(resolve_layer_axis(abs, cfg, LayerAxis::auto_detect, "p"), LayerAxis::absolute);
    QCOMPARE(resolve_layer_axis(moe_, cfg, LayerAxis::auto_detect, "p"), LayerAxis::moe);
    RoutingPayload neither{1, 2, 2, {1, 2, 3, 0}};
    CHECK_ERROR(moe::ErrorKind::input, resolve_layer_axis(neither, cfg, LayerAxis::auto_detect, "p"),
                {"neither layer layout", "dense layer 0 has non-zero rows"});
    std::vector<DocumentRouting::Layer> layers(1);
    layers[0].layer = 1;
    layers[0].k = 2;
    CHECK_ERROR(moe::ErrorKind::input, append_routing(moe_, cfg, LayerAxis::absolute, layers, "p"),
                {"dense layer 0 has a non-zero row"});
    QVERIFY(layers[0].experts.empty());  // nothing appended on error
    append_routing(moe_, cfg, LayerAxis::moe, layers, "p");
    QCOMPARE(layers[0].experts, (std::vector<int32_t>{1, 3, 2, 0}));
    // Top-1 routing: a zero row may be expert 0, so both readings fit: refused unless told.
    c["num_experts_per_tok"] = 1;
    cfg = moe::parse_model_config(c.dump(), "test config");
    RoutingPayload top1{2, 2, 1, {0, 0, 0, 0}};
    CHECK_ERROR(moe::ErrorKind::input, resolve_layer_axis(top1, cfg, LayerAxis::auto_detect, "p"),
                {"ambiguous", "--layer-axis"});
    QCOMPARE(resolve_layer_axis(top1, cfg, LayerAxis::moe, "p"), LayerAxis::moe);
}

void CaptureTest::sglang_absolute_int32() {
    const QString url = start({"--engine", "sglang", "--layout", "absolute", "--dtype", "int32"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("sglang.db"));
    const CaptureResult r = capture(store, options(url, CaptureEngine::sglang));
    QVERIFY(r.complete);
    QCOMPARE(r.documents_captured, int64_t{6});
    QCOMPARE(r.server_version, std::string("0.5.test-sglang"));
    QCOMPARE(r.layer_axis, std::string("absolute"));
    const RunInfo run = store.run(r.run_id);
    QCOMPARE(run.source, std::string("sglang"));
    QCOMPARE(run.engine_version, std::string("0.5.test-sglang"));
    QCOMPARE(run.source, std::string("sglang"));
    QVERIFY(!run.has_gate_weights());
    QVERIFY(!run.has_entropy);
    QCOMPARE(run.layers.size(), size_t{58});
    QCOMPARE(run.layers.front().layer, int64_t{3});
    QCOMPARE(run.experts_format, std::string("u8"));
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
    QVERIFY2(documents_whole(store, r.run_id).isEmpty(), "documents not whole");
    // Prompt only: the stored tokens are the corpus's tokens.
    const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
    int64_t corpus_tokens = 0;
    for (const auto& d : c.domains)
        for (const auto& td : tokenize_domain(d, *tok_, 0)) corpus_tokens += int64_t(td.ids.size());
    QCOMPARE(store.run(r.run_id).n_tokens, corpus_tokens);
    // Again: already complete.
    QVERIFY(capture(store, options(url, CaptureEngine::sglang)).already_complete);
}

void CaptureTest::sglang_uint16_generated() {
    const QString url = start({"--engine", "sglang", "--layout", "absolute", "--dtype", "uint16"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("sglang16.db"));
    CaptureOptions o = options(url, CaptureEngine::sglang);
    o.gen_tokens = 5;
    const CaptureResult r = capture(store, o);
    QVERIFY(r.complete);
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
    // Each window stores its prompt and 4 of its 5 generated tokens (the server's are last+1..).
    StoredDocument d;
    QVERIFY(store.read_document(r.run_id, store.documents(r.run_id).front().doc_id, {}, d));
    QVERIFY(d.token_ids.size() > 4);
}

void CaptureTest::vllm_moe_ordinal() {
    const QString url = start({"--engine", "vllm", "--layout", "moe", "--dtype", "int32"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("vllm_moe.db"));
    const CaptureResult r = capture(store, options(url, CaptureEngine::vllm));
    QVERIFY(r.complete);
    QCOMPARE(r.layer_axis, std::string("moe"));
    QCOMPARE(store.run(r.run_id).source, std::string("vllm"));
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
}

void CaptureTest::vllm_absolute_split_prompt_generated() {
    const QString url = start({"--engine", "vllm", "--layout", "absolute", "--dtype", "int64", "--split-prompt"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("vllm_abs.db"));
    CaptureOptions o = options(url, CaptureEngine::vllm);
    o.gen_tokens = 3;
    const CaptureResult r = capture(store, o);
    QVERIFY(r.complete);
    QCOMPARE(r.layer_axis, std::string("absolute"));
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
}

void CaptureTest::vllm_compact_uint8() {
    const QString url = start({"--engine", "vllm", "--layout", "compact", "--dtype", "uint8"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("vllm_compact.db"));
    const CaptureResult r = capture(store, options(url, CaptureEngine::vllm));
    QVERIFY(r.complete);
    QCOMPARE(r.layer_axis, std::string("moe"));
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
}

void CaptureTest::retry_after_http_500() {
    const QString url = start({"--engine", "sglang", "--mode", "fail_once"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("retry.db"));
    CaptureOptions o = options(url, CaptureEngine::sglang);
    o.concurrency = 1;
    const CaptureResult r = capture(store, o);
    QVERIFY(r.complete);
    QCOMPARE(r.retries, int64_t{1});
    const QString problem = compare_with_server(store, r.run_id, counts_);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
}

void CaptureTest::bad_responses_data() {
    QTest::addColumn<QString>("engine");
    QTest::addColumn<QString>("mode");
    QTest::addColumn<QStringList>("needles");
    QTest::newRow("sglang wrong rows") << "sglang" << "wrong_rows" << QStringList{"rows", "expected"};
    QTest::newRow("vllm wrong rows") << "vllm" << "wrong_rows" << QStringList{"rows, expected"};
    QTest::newRow("sglang expert 256") << "sglang" << "bad_expert" << QStringList{"expert id 256", "[0, 256)"};
    QTest::newRow("vllm expert 256") << "vllm" << "bad_expert" << QStringList{"expert id 256"};
    QTest::newRow("sglang dense rows") << "sglang" << "dense_nonzero" << QStringList{"dense layer 0", "non-zero"};
    QTest::newRow("sglang truncated") << "sglang" << "truncated" << QStringList{"truncated base64"};
    QTest::newRow("vllm truncated") << "vllm" << "truncated" << QStringList{"base64"};
    QTest::newRow("sglang no feature") << "sglang" << "no_feature" << QStringList{"--enable-return-routed-experts", "SGLang"};
    QTest::newRow("vllm no feature") << "vllm" << "no_feature" << QStringList{"--enable-return-routed-experts", "vLLM"};
}

void CaptureTest::bad_responses() {
    QFETCH(QString, engine);
    QFETCH(QString, mode);
    QFETCH(QStringList, needles);
    const QString url = start({"--engine", engine, "--mode", mode});
    QVERIFY(!url.isEmpty());
    const std::string path = db(("bad-" + engine + "-" + mode + ".db").toUtf8().constData());
    RoutingStore store = RoutingStore::open(path);
    CaptureOptions o = options(url, engine == "sglang" ? CaptureEngine::sglang : CaptureEngine::vllm);
    o.concurrency = 1;
    CHECK_ERROR(moe::ErrorKind::input, capture(store, o), (needles << url));
    // Never a half-written run: incomplete, and no document stored.
    const std::vector<RunInfo> runs = store.runs();
    QCOMPARE(runs.size(), size_t{1});
    QCOMPARE(runs[0].status, std::string("incomplete"));
    QCOMPARE(runs[0].n_documents, int64_t{0});
    QVERIFY(store.check_integrity().empty());
}

void CaptureTest::hanging_server_times_out() {
    const QString url = start({"--engine", "vllm", "--mode", "hang"});
    QVERIFY(!url.isEmpty());
    RoutingStore store = RoutingStore::open(db("hang.db"));
    CaptureOptions o = options(url, CaptureEngine::vllm);
    o.concurrency = 1;
    o.http.timeout_s = 0.5;
    o.http.retries = 1;
    CHECK_ERROR(moe::ErrorKind::failure, capture(store, o), {"timed out", "after 2 attempts"});
    QCOMPARE(store.runs().at(0).status, std::string("incomplete"));
    QCOMPARE(store.runs().at(0).n_documents, int64_t{0});
}

void CaptureTest::stop_and_resume() {
    const QString url = start({"--engine", "sglang"});
    QVERIFY(!url.isEmpty());
    RoutingStore whole = RoutingStore::open(db("whole.db"));
    const CaptureResult w = capture(whole, options(url, CaptureEngine::sglang));
    QVERIFY(w.complete);
    RoutingStore store = RoutingStore::open(db("resume.db"));
    CaptureOptions o = options(url, CaptureEngine::sglang);
    o.concurrency = 1;
    o.progress = [](const CaptureProgress& p) { return p.documents_done < 2; };
    const CaptureResult a = capture(store, o);
    QVERIFY(a.stopped);
    QVERIFY(!a.complete);
    QVERIFY(a.documents_captured >= 2 && a.documents_captured < 6);
    QCOMPARE(store.run(a.run_id).status, std::string("incomplete"));
    QVERIFY(documents_whole(store, a.run_id).isEmpty());
    o.progress = nullptr;
    const CaptureResult b = capture(store, o);
    QVERIFY(b.resumed);
    QVERIFY(b.complete);
    QCOMPARE(b.run_id, a.run_id);
    QCOMPARE(b.documents_skipped, a.documents_captured);
    QCOMPARE(b.documents_captured + a.documents_captured, int64_t{6});
    QVERIFY(store_counts(store, b.run_id) == store_counts(whole, w.run_id));
    QVERIFY(store_test::aggregates_mismatch(store, b.run_id).isEmpty());
}

void CaptureTest::import_saved_responses() {
    for (const QString engine : {"sglang", "vllm"}) {
        const QString url = start({"--engine", engine, "--layout", engine == "sglang" ? "absolute" : "moe"});
        QVERIFY(!url.isEmpty());
        RoutingStore live = RoutingStore::open(db(("live-" + engine + ".db").toUtf8().constData()));
        CaptureOptions o = options(url, engine == "sglang" ? CaptureEngine::sglang : CaptureEngine::vllm);
        o.gen_tokens = 2;
        QVERIFY(capture(live, o).complete);
        RoutingStore store = RoutingStore::open(db(("import-" + engine + ".db").toUtf8().constData()));
        const ImportResult r = run_import(store, cfg_, record_, save_.toStdString(), {});
        QVERIFY(r.complete);
        QCOMPARE(r.engine, engine.toStdString());
        const QString problem = compare_with_server(store, r.run_id, counts_);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        QVERIFY(run_import(store, cfg_, record_, save_.toStdString(), {}).already_complete);
        cleanup();
    }
    // A damaged line: a clear error naming the file and line, and nothing stored (every line is
    // checked before the first is stored).
    const QString bad = tmp_.path() + "/bad.jsonl";
    {
        QFile in(save_);
        QVERIFY(in.open(QIODevice::ReadOnly));
        const QList<QByteArray> lines = in.readAll().split('\n');
        QFile out(bad);
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write(lines[0] + "\n" + lines[1] + "\n");
        nlohmann::json j = nlohmann::json::parse(lines[2].toStdString());
        j["response"]["choices"][0]["routed_experts"] = "AAAA";
        out.write(QByteArray::fromStdString(j.dump()) + "\n");
    }
    RoutingStore store = RoutingStore::open(db("import-bad.db"));
    CHECK_ERROR(moe::ErrorKind::input, run_import(store, cfg_, record_, bad.toStdString(), {}),
                {"bad.jsonl:3", "NumPy"});
    QVERIFY(store.runs().empty());
    // The first two lines alone import whole.
    {
        QFile f(bad);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QList<QByteArray> lines = f.readAll().split('\n');
        f.close();
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(lines[0] + "\n" + lines[1] + "\n");
    }
    const ImportResult two = run_import(store, cfg_, record_, bad.toStdString(), {});
    QVERIFY(two.complete);
    QCOMPARE(store.runs().size(), size_t{1});
    QCOMPARE(store.runs().at(0).n_documents, int64_t{2});
}

void CaptureTest::cli_capture_and_import() {
    const QString url = start({"--engine", "vllm", "--layout", "moe"});
    QVERIFY(!url.isEmpty());
    const QString dbp = tmp_.path() + "/cli.db";
    QProcess p;
    p.start(kMoewb, {"capture", "--server", url, "--engine", "vllm", "--model", model_dir_, "--corpus", corpus_,
                     "--db", dbp, "--context", "64", "--concurrency", "2", "--json", "--quiet"});
    QVERIFY(p.waitForFinished(120000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["status"].get<std::string>(), std::string("complete"));
    QCOMPARE(j["source"].get<std::string>(), std::string("vllm"));
    QCOMPARE(j["layer_axis"].get<std::string>(), std::string("moe"));
    {
        RoutingStore store = RoutingStore::open(dbp.toStdString());
        const QString problem = compare_with_server(store, j["run_id"].get<int64_t>(), counts_);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
    }
    p.start(kMoewb, {"import", "--db", dbp, "--model", model_dir_, "--responses", save_, "--json", "--quiet"});
    QVERIFY(p.waitForFinished(120000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto k = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(k["source"].get<std::string>(), std::string("vllm"));
    // Usage errors exit 2 naming the flag.
    p.start(kMoewb, {"capture", "--server", url, "--engine", "tgi", "--model", model_dir_, "--corpus", corpus_,
                     "--db", dbp});
    QVERIFY(p.waitForFinished(30000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(p.readAllStandardError().contains("--engine"));
    // A server without the feature: exit 2 with the flag to set.
    cleanup();
    const QString url2 = start({"--engine", "sglang", "--mode", "no_feature"});
    p.start(kMoewb, {"capture", "--server", url2, "--engine", "sglang", "--model", model_dir_, "--corpus", corpus_,
                     "--db", tmp_.path() + "/cli2.db", "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(p.readAllStandardError().contains("--enable-return-routed-experts"));
    // A corpus file that is not UTF-8: exit 2 naming it, before a store file is made.
    const QString latin1 = tmp_.path() + "/latin1.jsonl";
    QFile f(latin1);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("{\"id\": \"a\", \"text\": \"caf\xE9\"}\n");
    f.close();
    p.start(kMoewb, {"capture", "--server", url2, "--engine", "sglang", "--model", model_dir_, "--corpus", latin1,
                     "--db", tmp_.path() + "/cli3.db", "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(p.readAllStandardError().contains("latin1.jsonl:1: invalid UTF-8"));
    QVERIFY(!QFile::exists(tmp_.path() + "/cli3.db"));
    // Saved responses with a line that is not JSON: exit 2 naming the file and line, and no
    // store file is made.
    const QString broken = tmp_.path() + "/broken.jsonl";
    {
        QFile out(broken);
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write("{\"id\": \"cut\", \"response\": {\"choi\n");
    }
    p.start(kMoewb, {"import", "--db", tmp_.path() + "/cli4.db", "--model", model_dir_, "--responses", broken,
                     "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(p.readAllStandardError().contains("broken.jsonl:1: not a JSON object"));
    QVERIFY(!QFile::exists(tmp_.path() + "/cli4.db"));
}

QTEST_GUILESS_MAIN(CaptureTest)
#include "test_capture.moc"
