// Statistics on routing whose answers are worked out by hand (docs/metrics.md): shares and
// ratio to uniform, domain-vs-rest log-ratio, load balance, entropy means and histograms,
// co-activation with lift, vocabulary specialisation, consecutive-token repetition with its
// baselines, cross-layer and cross-run agreement. Then the CSV exports, read back by Python's
// csv module with token texts holding commas, quotes, newlines and spaces, and the CLI's
// exact column lists.
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <filesystem>
#include <set>

#include "analysis/agreement.h"
#include "analysis/csv_exports.h"
#include "analysis/expert_stats.h"
#include "analysis/token_stats.h"
#include "analysis/trace_writer.h"
#include "tests/test_store_support.h"

using namespace moe::analysis;

namespace {

const QString kMoewb = QStringLiteral(MOE_BINARY_DIR "/app/moewb");

// Token texts that a CSV writer must quote.
std::vector<std::string> tricky_vocab() {
    std::vector<std::string> v(16);
    for (size_t i = 0; i < v.size(); ++i) v[i] = "t" + std::to_string(i);
    v[10] = "a,b";
    v[11] = "say \"hi\"";
    v[12] = "line1\nline2\t\xC3\xA9\xE4\xB8\xAD";
    v[13] = " lead space ";
    v[14] = "cr\r\nlf,\"";
    return v;
}

struct Tok {
    int32_t id;
    std::vector<int32_t> l1, l2;  // experts, rank order
    std::vector<float> w1, w2;
    float h1, h2;  // entropy
};

std::unique_ptr<DocumentRouting> doc_of(int64_t domain, const std::string& name, const std::vector<Tok>& toks) {
    auto d = std::make_unique<DocumentRouting>();
    d->domain_id = domain;
    d->split = "test";
    d->name = name;
    d->text_hash = "h-" + name;
    d->layers.resize(2);
    d->layers[0].layer = 1;
    d->layers[1].layer = 2;
    d->layers[0].k = d->layers[1].k = 2;
    for (const Tok& t : toks) {
        d->token_ids.push_back(t.id);
        d->layers[0].experts.insert(d->layers[0].experts.end(), t.l1.begin(), t.l1.end());
        d->layers[1].experts.insert(d->layers[1].experts.end(), t.l2.begin(), t.l2.end());
        d->layers[0].gate_weights.insert(d->layers[0].gate_weights.end(), t.w1.begin(), t.w1.end());
        d->layers[1].gate_weights.insert(d->layers[1].gate_weights.end(), t.w2.begin(), t.w2.end());
        d->layers[0].entropy.push_back(t.h1);
        d->layers[1].entropy.push_back(t.h2);
    }
    return d;
}

// Domain A, document a1 (tokens 10 11 10 12) and domain B, document b1 (11 13 14); two
// layers of E = 4, k = 2. Gate weights and entropies are exact in binary16 / float32.
std::vector<Tok> doc_a() {
    return {{10, {0, 1}, {1, 0}, {0.75f, 0.25f}, {0.5f, 0.5f}, 0.1f, 0.2f},
            {11, {0, 2}, {1, 0}, {0.625f, 0.375f}, {0.5f, 0.5f}, 0.5f, 0.2f},
            {10, {0, 1}, {2, 3}, {0.75f, 0.25f}, {0.5f, 0.5f}, 1.0f, 0.2f},
            {12, {3, 2}, {2, 3}, {0.5f, 0.5f}, {0.5f, 0.5f}, 1.3862944f, 0.2f}};
}
std::vector<Tok> doc_b() {
    return {{11, {3, 2}, {0, 1}, {0.75f, 0.25f}, {0.5f, 0.5f}, 2.0f, 0.2f},
            {13, {3, 1}, {0, 1}, {0.75f, 0.25f}, {0.5f, 0.5f}, 0.3f, 0.2f},
            {14, {2, 3}, {0, 1}, {0.75f, 0.25f}, {0.5f, 0.5f}, 0.7f, 0.2f}};
}

bool near(double a, double b, double tol = 1e-12) {
    return std::abs(a - b) <= tol * std::max(1.0, std::abs(b));
}

}  // namespace

class StatsTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void shares_and_ratio();
    void domain_log_ratio();
    void load_balance_stats();
    void entropy();
    void coactivation_and_lift();
    void vocabulary();
    void repetition_stats();
    void cross_layer();
    void run_agreement();
    void stats_csv_columns();
    void tokens_csv_read_by_python();
    void other_exports();
    void run_without_gate_weights();
    void cli_stats_and_export();
    void cli_output_that_cannot_be_written();

private:
    QTemporaryDir tmp_;
    std::string db_;
    std::optional<RoutingStore> store_;
    int64_t run_ = 0, run_b_ = 0, captured_ = 0;
    std::vector<int64_t> domains_;
    QString python_csv(const QString& csv_path, QString* error);  // rows as JSON, via Python's csv module
};

void StatsTest::initTestCase() {
    db_ = (tmp_.path() + "/stats.db").toStdString();
    store_.emplace(RoutingStore::open(db_));
    RoutingStore& s = *store_;
    const std::vector<RunLayer> layers = {{1, 4, 2}, {2, 4, 2}};
    const auto sr = store_test::make_run(s, layers, 2, true, true, tricky_vocab());
    run_ = sr.run_id;
    domains_ = sr.domain_ids;  // "domain0" = A, "domain1" = B
    {
        TraceWriter w(s, run_);
        w.submit(doc_of(domains_[0], "a1", doc_a()));
        w.submit(doc_of(domains_[1], "b1", doc_b()));
        w.finish();
    }
    s.finish_run(run_, true);
    // The same tokens routed a little differently (layer 1 of a1: token 0 ranks swapped,
    // token 3's second expert 0 instead of 2).
    RunSpec spec = s.run(run_);
    spec.trace_key = "second";
    run_b_ = s.create_run(spec);
    {
        auto a = doc_a();
        a[0].l1 = {1, 0};
        a[3].l1 = {3, 0};
        TraceWriter w(s, run_b_);
        w.submit(doc_of(domains_[0], "a1", a));
        w.submit(doc_of(domains_[1], "b1", doc_b()));
        w.finish();
    }
    // A captured run: no gate weights, no entropy.
    spec.trace_key = "captured";
    spec.source = "vllm";
    spec.gate_weight_kind.reset();
    spec.has_entropy = false;
    captured_ = s.create_run(spec);
    {
        auto d = doc_of(domains_[0], "a1", doc_a());
        for (auto& l : d->layers) l.gate_weights.clear(), l.entropy.clear();
        TraceWriter w(s, captured_);
        w.submit(std::move(d));
        w.finish();
    }
}

void StatsTest::shares_and_ratio() {
    const auto shares = expert_shares(*store_, run_, 1);
    QCOMPARE(shares.size(), size_t{8});  // 2 domains × 4 experts, zero counts included
    const int64_t count_a[] = {3, 2, 2, 1}, rank0_a[] = {3, 0, 0, 1}, count_b[] = {0, 1, 2, 3};
    const double wsum_a[] = {0.75 + 0.625 + 0.75, 0.25 + 0.25, 0.375 + 0.5, 0.5};
    for (int e = 0; e < 4; ++e) {
        const ExpertShare& a = shares[size_t(e)];
        const ExpertShare& b = shares[size_t(4 + e)];
        QCOMPARE(a.domain, std::string("domain0"));
        QCOMPARE(a.tokens, int64_t{4});
        QCOMPARE(a.count, count_a[e]);
        QCOMPARE(a.rank0_count, rank0_a[e]);
        QVERIFY(near(a.share, count_a[e] / 8.0));
        // 4 tokens, k = 2 of E = 4: uniform routing selects each expert for 2 of them.
        QVERIFY(near(a.ratio_to_uniform, (count_a[e] / 4.0) / (2.0 / 4.0)));
        QVERIFY(near(*a.gate_weight_sum, wsum_a[e]));
        QVERIFY(near(*a.mean_gate_weight, wsum_a[e] / count_a[e]));
        QCOMPARE(b.count, count_b[e]);
        QVERIFY(near(b.share, count_b[e] / 6.0));
    }
    QVERIFY(!shares[4].mean_gate_weight);  // expert 0 never selected in domain B
    QCOMPARE(*shares[4].gate_weight_sum, 0.0);
    // The heatmap query: one domain, all layers.
    QCOMPARE(expert_shares(*store_, run_, std::nullopt, domains_[1]).size(), size_t{8});
}

void StatsTest::domain_log_ratio() {
    const auto r = domain_log_ratios(*store_, run_, 0.5, 1);
    QCOMPARE(r.size(), size_t{8});
    // expert 0, domain A: (3 + ½) / (8 + 2) against the rest (B): (0 + ½) / (6 + 2)
    QCOMPARE(r[0].domain, std::string("domain0"));
    QVERIFY(near(r[0].log_ratio, std::log(0.35 / 0.0625)));
    QVERIFY(near(r[0].rest_share, 0.0));
    // expert 3, domain B: (3 + ½) / (6 + 2) against (1 + ½) / (8 + 2)
    QVERIFY(near(r[7].log_ratio, std::log((3.5 / 8) / (1.5 / 10))));
}

void StatsTest::load_balance_stats() {
    const auto lb = load_balance(*store_, run_, 1);
    QCOMPARE(lb.size(), size_t{3});  // A, B, all
    QCOMPARE(lb[0].domain, std::string("domain0"));
    QVERIFY(near(lb[0].max_over_mean, 1.5));
    QVERIFY(near(lb[0].max_vio, 0.5));
    QVERIFY(near(lb[0].cv, std::sqrt(0.5) / 2));
    QCOMPARE(lb[0].dead_experts, int64_t{0});
    QVERIFY(near(lb[1].max_over_mean, 2.0));
    QVERIFY(near(lb[1].cv, std::sqrt(1.25) / 1.5));
    QCOMPARE(lb[1].dead, std::vector<int64_t>{0});
    QCOMPARE(lb[2].domain, std::string(kAllDomains));
    QCOMPARE(lb[2].tokens, int64_t{7});
    QVERIFY(near(lb[2].max_over_mean, 4 / 3.5));
}

void StatsTest::entropy() {
    const auto means = entropy_means(*store_, run_);
    // layer 1 of A: (0.1 + 0.5 + 1.0 + ln 4) / 4, of the stored (binary16) values
    bool found = false;
    for (const EntropyMean& m : means) {
        if (m.domain == "domain0" && m.layer == 1) {
            found = true;
            auto h = [](float v) { return double(moe::f16_to_f32(moe::f32_to_f16(v))); };
            QVERIFY(near(m.mean, (h(0.1f) + h(0.5f) + 1.0 + h(1.3862944f)) / 4));
            QVERIFY(near(m.max_entropy, std::log(4.0)));
        }
    }
    QVERIFY(found);
    const auto hist = entropy_histograms(*store_, run_, 4, 1);
    QCOMPARE(hist.size(), size_t{3});
    // bins of width ln4 / 4 = 0.3466: A: 0.1 → 0, 0.5 → 1, 1.0 → 2, ln 4 → 3 (last, inclusive)
    QCOMPARE(hist[0].bins, (std::vector<int64_t>{1, 1, 1, 1}));
    // B: 2.0 (above ln 4 by construction) → 3, 0.3 → 0, 0.7 → 2
    QCOMPARE(hist[1].bins, (std::vector<int64_t>{1, 0, 1, 1}));
    QCOMPARE(hist[2].domain, std::string(kAllDomains));
    QCOMPARE(hist[2].bins, (std::vector<int64_t>{2, 1, 2, 2}));
}

void StatsTest::coactivation_and_lift() {
    const auto all = coactivation(*store_, run_, 1);
    QCOMPARE(all.size(), size_t{3});
    const Coactivation& c = all[2];  // all domains
    QCOMPARE(c.domain, std::string(kAllDomains));
    QCOMPARE(c.tokens, int64_t{7});
    QCOMPARE(c.selected, (std::vector<int64_t>{3, 3, 4, 4}));
    QCOMPARE(c.pair(0, 1), int64_t{2});
    QCOMPARE(c.pair(1, 0), int64_t{2});
    QCOMPARE(c.pair(0, 2), int64_t{1});
    QCOMPARE(c.pair(2, 3), int64_t{3});
    QCOMPARE(c.pair(1, 3), int64_t{1});
    QCOMPARE(c.pair(0, 3), int64_t{0});
    QVERIFY(near(c.pair_lift(0, 1), 2.0 * 7 / (3 * 3)));
    QCOMPARE(c.adjacent_pair(0, 1), int64_t{2});
    QCOMPARE(c.adjacent_pair(1, 0), int64_t{0});
    QCOMPARE(c.adjacent_pair(3, 2), int64_t{2});
    QCOMPARE(c.adjacent_pair(2, 3), int64_t{1});
    QVERIFY(near(c.adjacent_lift(0, 1), 2.0 / (7.0 * 1 * (3.0 / 14) * (3.0 / 14))));
}

void StatsTest::vocabulary() {
    const auto v = vocabulary_specialisation(*store_, run_, 1, std::nullopt, 5, 1);
    QCOMPARE(v.size(), size_t{4});
    const ExpertVocabulary& e0 = v[0];
    QCOMPARE(e0.selections, int64_t{3});
    QCOMPARE(e0.top.size(), size_t{2});
    QCOMPARE(e0.top[0].token_id, 10);
    QCOMPARE(e0.top[0].text, std::string("a,b"));
    QCOMPARE(e0.top[0].with_expert, int64_t{2});
    QCOMPARE(e0.top[0].occurrences, int64_t{2});
    QVERIFY(near(e0.top[0].enrichment, (2.0 / 3) / (2.0 / 7)));
    QCOMPARE(e0.top[1].token_id, 11);
    QVERIFY(near(e0.top[1].enrichment, (1.0 / 3) / (2.0 / 7)));
    // min_count drops rare pairs
    QVERIFY(vocabulary_specialisation(*store_, run_, 1, std::nullopt, 5, 3)[0].top.empty());
    CHECK_ERROR(moe::ErrorKind::input, vocabulary_specialisation(*store_, run_, 0), {"not a MoE layer"});
}

void StatsTest::repetition_stats() {
    const auto rep = repetition(*store_, run_, 1);
    QCOMPARE(rep.size(), size_t{3});
    const Repetition& a = rep[0];
    QCOMPARE(a.domain, std::string("domain0"));
    QCOMPARE(a.pairs, int64_t{3});
    QVERIFY(near(a.rank0_repeat, 2.0 / 3));
    QVERIFY(near(a.any_overlap, 2.0 / 3));
    QVERIFY(near(a.mean_overlap, 2.0 / 3));
    QVERIFY(near(a.rank0_baseline, 0.75 * 0.75 + 0.25 * 0.25));
    QVERIFY(near(a.mean_overlap_baseline, 0.5625 + 0.25 + 0.25 + 0.0625));
    QVERIFY(near(a.any_overlap_baseline, 4.0 / 6));  // all 6 pairs of A's 4 token sets
    QVERIFY(near(a.rank0_uniform, 0.25));
    QVERIFY(near(a.any_overlap_uniform, 1 - 1.0 / 6));
    // Pairs never span documents: all domains have 3 + 2 pairs.
    QCOMPARE(rep[2].pairs, int64_t{5});
}

void StatsTest::cross_layer() {
    const auto c = cross_layer_agreement(*store_, run_);
    QCOMPARE(c.size(), size_t{1});
    QCOMPARE(c[0].layer_a, int64_t{1});
    QCOMPARE(c[0].layer_b, int64_t{2});
    QCOMPARE(c[0].tokens, int64_t{7});
    // rank-0 pairs (layer 1, layer 2): (0,1) (0,1) (0,2) (3,2) (3,0) (3,0) (2,0)
    const double mi = 2.0 / 7 * std::log(7.0 / 3) + 2 * (1.0 / 7) * std::log(7.0 / 6) + 2.0 / 7 * std::log(14.0 / 9) +
                      1.0 / 7 * std::log(7.0 / 3);
    QVERIFY(near(c[0].mutual_information, mi));
    const double h1 = -(3.0 / 7 * std::log(3.0 / 7) * 2 + 1.0 / 7 * std::log(1.0 / 7));
    const double h2 = -(2.0 / 7 * std::log(2.0 / 7) * 2 + 3.0 / 7 * std::log(3.0 / 7));
    QVERIFY(near(c[0].nmi, mi / std::sqrt(h1 * h2)));
    QVERIFY(near(c[0].best_map_agreement, 5.0 / 7));
}

void StatsTest::run_agreement() {
    const RunAgreement r = routing_agreement(*store_, run_, run_b_);
    QCOMPARE(r.documents_matched, int64_t{2});
    QCOMPARE(r.documents_unmatched, int64_t{0});
    QCOMPARE(r.layers.size(), size_t{2});
    QCOMPARE(r.layers[0].tokens, int64_t{7});
    QVERIFY(near(r.layers[0].top1, 6.0 / 7));
    QVERIFY(near(r.layers[0].overlap, 6.5 / 7));
    QVERIFY(near(r.layers[0].jaccard, (6 + 1.0 / 3) / 7));
    QVERIFY(near(r.layers[0].exact_set, 6.0 / 7));
    QVERIFY(near(r.layers[1].top1, 1.0));
    const RunAgreement self = routing_agreement(*store_, run_, run_);
    for (const RunAgreementLayer& l : self.layers) QVERIFY(near(l.top1, 1.0) && near(l.exact_set, 1.0));
}

QString StatsTest::python_csv(const QString& csv_path, QString* error) {
    QProcess p;
    p.start("/usr/bin/python3", {"-c",
                                 "import csv, json, sys\n"
                                 "with open(sys.argv[1], newline='', encoding='utf-8') as f:\n"
                                 "    print(json.dumps(list(csv.reader(f, strict=True))))\n",
                                 csv_path});
    if (!p.waitForFinished(60000) || p.exitCode() != 0) {
        *error = "python3: " + QString(p.readAllStandardError());
        return {};
    }
    return QString::fromUtf8(p.readAllStandardOutput());
}

void StatsTest::stats_csv_columns() {
    const QString out = tmp_.path() + "/stats.csv";
    const int64_t rows = write_stats_csv(*store_, run_, std::nullopt, out.toStdString());
    QCOMPARE(rows, int64_t{16});
    QString err;
    const auto j = nlohmann::json::parse(python_csv(out, &err).toStdString());
    QVERIFY2(err.isEmpty(), qPrintable(err));
    QCOMPARE(j.size(), size_t{17});
    QCOMPARE(j[0].get<std::vector<std::string>>(),
             (std::vector<std::string>{"run_id", "model", "domain", "layer", "expert", "tokens", "count", "share",
                                       "ratio_to_uniform", "gate_weight_sum", "mean_gate_weight", "rank0_count"}));
    const auto shares = expert_shares(*store_, run_);
    for (size_t i = 0; i < shares.size(); ++i) {
        const auto& r = j[i + 1];
        QCOMPARE(std::stoll(r[0].get<std::string>()), run_);
        QCOMPARE(r[1].get<std::string>(), std::string("synthetic"));
        QCOMPARE(r[2].get<std::string>(), shares[i].domain);
        QCOMPARE(std::stoll(r[4].get<std::string>()), shares[i].expert);
        QCOMPARE(std::stoll(r[6].get<std::string>()), shares[i].count);
        QCOMPARE(std::stod(r[7].get<std::string>()), shares[i].share);  // shortest round-trip text
        QCOMPARE(r[10].get<std::string>().empty(), !shares[i].mean_gate_weight.has_value());
    }
    // Every run without --run; one layer with --layer.
    QCOMPARE(write_stats_csv(*store_, std::nullopt, 2, out.toStdString()), int64_t{8 + 8 + 4});
    CHECK_ERROR(moe::ErrorKind::input, write_stats_csv(*store_, run_, 7, out.toStdString()), {"--layer", "7"});
}

void StatsTest::tokens_csv_read_by_python() {
    const QString out = tmp_.path() + "/tokens.csv";
    const int64_t rows = write_tokens_csv(*store_, run_, std::nullopt, out.toStdString());
    QCOMPARE(rows, int64_t{7 * 2 * 2});
    QString err;
    const auto j = nlohmann::json::parse(python_csv(out, &err).toStdString());
    QVERIFY2(err.isEmpty(), qPrintable(err));
    QCOMPARE(j[0].get<std::vector<std::string>>(),
             (std::vector<std::string>{"run_id", "doc_id", "domain", "token_pos", "token_id", "token_text", "layer",
                                       "rank", "expert", "gate_weight"}));
    QCOMPARE(j.size(), size_t(rows + 1));
    // Rebuild the expected rows: documents in order, token, layer, rank.
    const auto vocab = tricky_vocab();
    std::vector<std::vector<std::string>> expected;
    std::vector<StoredDocument> docs;
    store_->for_each_document(run_, {}, [&](const StoredDocument& d) {
        docs.push_back(d);
        return true;
    });
    for (const StoredDocument& d : docs)
        for (size_t t = 0; t < d.token_ids.size(); ++t)
            for (const StoredLayer& l : d.layers)
                for (size_t r = 0; r < 2; ++r) {
                    char w[32];
                    std::snprintf(w, sizeof w, "%g", double(l.gate_weights[t * 2 + r]));
                    expected.push_back({std::to_string(run_), std::to_string(d.doc_id), d.domain, std::to_string(t),
                                        std::to_string(d.token_ids[t]), vocab[size_t(d.token_ids[t])],
                                        std::to_string(l.layer), std::to_string(r),
                                        std::to_string(l.experts[t * 2 + r]), w});
                }
    for (size_t i = 0; i < expected.size(); ++i) {
        auto row = j[i + 1].get<std::vector<std::string>>();
        QCOMPARE(row.size(), size_t{10});
        row[9] = [&] {
            char w[32];
            std::snprintf(w, sizeof w, "%g", std::stod(row[9]));
            return std::string(w);
        }();
        QCOMPARE(row, expected[i]);
    }
    // The tricky texts all came through.
    std::set<std::string> texts;
    for (size_t i = 1; i < j.size(); ++i) texts.insert(j[i][5].get<std::string>());
    for (int id : {10, 11, 12, 13, 14}) QVERIFY2(texts.count(vocab[size_t(id)]), vocab[size_t(id)].c_str());
    // One layer only.
    QCOMPARE(write_tokens_csv(*store_, run_, 2, out.toStdString()), int64_t{7 * 2});
}

void StatsTest::other_exports() {
    QString err;
    const QString ent = tmp_.path() + "/entropy.csv";
    QCOMPARE(write_entropy_csv(*store_, run_, std::nullopt, ent.toStdString()), int64_t{14});
    auto j = nlohmann::json::parse(python_csv(ent, &err).toStdString());
    QVERIFY2(err.isEmpty(), qPrintable(err));
    QCOMPARE(j[0].get<std::vector<std::string>>(),
             (std::vector<std::string>{"run_id", "doc_id", "domain", "token_pos", "token_id", "token_text", "layer",
                                       "entropy"}));
    QCOMPARE(std::stof(j[1][7].get<std::string>()), moe::f16_to_f32(moe::f32_to_f16(0.1f)));  // binary16 entropy
    QCOMPARE(j[1][5].get<std::string>(), std::string("a,b"));

    const QString co = tmp_.path() + "/coactivation.csv";
    write_coactivation_csv(*store_, run_, 1, co.toStdString());
    j = nlohmann::json::parse(python_csv(co, &err).toStdString());
    QVERIFY2(err.isEmpty(), qPrintable(err));
    QCOMPARE(j[0].get<std::vector<std::string>>(),
             (std::vector<std::string>{"run_id", "domain", "layer", "kind", "expert_a", "expert_b", "count", "count_a",
                                       "count_b", "tokens", "lift"}));
    bool found = false;
    for (size_t i = 1; i < j.size(); ++i) {
        const auto r = j[i].get<std::vector<std::string>>();
        if (r[1] == "*" && r[3] == "pair" && r[4] == "2" && r[5] == "3") {
            found = true;
            QCOMPARE(r[6], std::string("3"));
            QCOMPARE(r[9], std::string("7"));
            QVERIFY(near(std::stod(r[10]), 3.0 * 7 / 16));
        }
        QVERIFY(r[3] == "adjacent" || std::stoi(r[4]) < std::stoi(r[5]));
    }
    QVERIFY(found);
}

void StatsTest::run_without_gate_weights() {
    const QString out = tmp_.path() + "/captured.csv";
    write_tokens_csv(*store_, captured_, std::nullopt, out.toStdString());
    QString err;
    auto j = nlohmann::json::parse(python_csv(out, &err).toStdString());
    QCOMPARE(j[1][9].get<std::string>(), std::string(""));  // no gate weight: empty, not 0
    write_stats_csv(*store_, captured_, std::nullopt, out.toStdString());
    j = nlohmann::json::parse(python_csv(out, &err).toStdString());
    for (size_t i = 1; i < j.size(); ++i) {
        QCOMPARE(j[i][9].get<std::string>(), std::string(""));
        QCOMPARE(j[i][10].get<std::string>(), std::string(""));
    }
    CHECK_ERROR(moe::ErrorKind::input, write_entropy_csv(*store_, captured_, std::nullopt, out.toStdString()),
                {"needs router entropy", "vllm"});
    CHECK_ERROR(moe::ErrorKind::input, entropy_histograms(*store_, captured_), {"needs router entropy"});
    // Statistics that need only expert ids work.
    QCOMPARE(load_balance(*store_, captured_, 1).size(), size_t{2});
    QCOMPARE(coactivation(*store_, captured_, 1).size(), size_t{2});
}

void StatsTest::cli_stats_and_export() {
    const QString csv = tmp_.path() + "/cli_stats.csv";
    QProcess p;
    p.start(kMoewb, {"stats", "--db", QString::fromStdString(db_), "--run", QString::number(run_), "--csv", csv});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(f.readLine(), QByteArray(kStatsCsvHeader) + "\r\n");

    const QString tok = tmp_.path() + "/cli_tokens.csv";
    p.start(kMoewb,
            {"export", "--db", QString::fromStdString(db_), "--run", QString::number(run_), "--tokens", "--csv", tok});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    QFile t(tok);
    QVERIFY(t.open(QIODevice::ReadOnly));
    QCOMPARE(t.readLine(), QByteArray(kTokensCsvHeader) + "\r\n");

    p.start(kMoewb, {"stats", "--db", QString::fromStdString(db_), "--run", QString::number(run_), "--load-balance",
                     "--entropy", "--log-ratio", "--repetition", "--cross-layer", "--vocab", "--layer", "1",
                     "--agreement", QString::number(run_b_), "--runs"});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    for (const char* key :
         {"runs", "load_balance", "entropy", "log_ratio", "repetition", "cross_layer", "vocab", "agreement"})
        QVERIFY2(j.contains(key), key);
    QCOMPARE(j["agreement"]["documents_matched"].get<int>(), 2);
    // --vocab at its default minimum count (5) lists none of this run's rare pairs; at 1 it
    // lists what analysis does, cut at --vocab-top.
    QCOMPARE(j["vocab"][0]["min_count"].get<int64_t>(), moe::analysis::kVocabMinCount);
    QVERIFY(j["vocab"][0]["top"].empty());
    p.start(kMoewb, {"stats", "--db", QString::fromStdString(db_), "--run", QString::number(run_), "--vocab", "--layer",
                     "1", "--vocab-min-count", "1", "--vocab-top", "1"});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto v = nlohmann::json::parse(p.readAllStandardOutput().toStdString())["vocab"];
    const auto want = vocabulary_specialisation(*store_, run_, 1, std::nullopt, 1, 1);
    QCOMPARE(v.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        QCOMPARE(v[i]["expert"].get<int64_t>(), want[i].expert);
        QCOMPARE(v[i]["min_count"].get<int64_t>(), int64_t{1});
        QCOMPARE(v[i]["top"].size(), want[i].top.size());
        if (!want[i].top.empty()) QCOMPARE(v[i]["top"][0]["token_id"].get<int32_t>(), want[i].top[0].token_id);
    }
    QCOMPARE(v[0]["top"].size(), size_t{1});
    // The vocabulary's options without --vocab, or out of range, are refused.
    for (const QStringList& bad : {QStringList{"--vocab-min-count", "2", "--entropy"},
                                   QStringList{"--vocab", "--vocab-min-count", "0"},
                                   QStringList{"--vocab", "--vocab-top", "x"}}) {
        p.start(kMoewb, QStringList{"stats", "--db", QString::fromStdString(db_), "--run", QString::number(run_), "--layer", "1"} + bad);
        QVERIFY(p.waitForFinished(30000));
        QVERIFY2(p.exitCode() == 2, qPrintable(bad.join(' ')));
        QVERIFY2(p.readAllStandardError().contains("--vocab-"), qPrintable(bad.join(' ')));
    }
}

void StatsTest::cli_output_that_cannot_be_written() {
    // A full disk (/dev/full) under standard output or --csv: exit 1 and a message, never a
    // truncated file with exit 0; a device or pipe given to --csv is written to, not replaced by
    // a file renamed over it; an empty --csv is refused before anything runs.
    const QStringList stats{"stats", "--db", QString::fromStdString(db_), "--run", QString::number(run_)};
    if (QFileInfo::exists("/dev/full")) {
        QProcess p;
        p.setStandardOutputFile("/dev/full");
        p.start(kMoewb, stats + QStringList{"--entropy"});
        QVERIFY(p.waitForFinished(30000));
        QCOMPARE(p.exitCode(), 1);
        QVERIFY2(p.readAllStandardError().contains("writing to standard output failed"), "stats > /dev/full");
        p.setStandardOutputFile(QProcess::nullDevice());
        p.start(kMoewb, stats + QStringList{"--csv", "/dev/full"});
        QVERIFY(p.waitForFinished(30000));
        QCOMPARE(p.exitCode(), 1);
        QVERIFY2(p.readAllStandardError().contains("/dev/full"), "stats --csv /dev/full");
        QVERIFY(std::filesystem::is_character_file("/dev/full"));
    }
    QProcess p;
    p.start(kMoewb, stats + QStringList{"--csv", "/dev/stdout"});
    QVERIFY(p.waitForFinished(30000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    QVERIFY(p.readAllStandardOutput().startsWith(QByteArray(kStatsCsvHeader) + "\r\n"));
    QVERIFY(!QFileInfo::exists("/dev/stdout.partial"));
    p.start(kMoewb, stats + QStringList{"--csv", ""});
    QVERIFY(p.waitForFinished(30000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY2(p.readAllStandardError().contains("name is empty"), "--csv ''");
}

QTEST_GUILESS_MAIN(StatsTest)
#include "test_stats.moc"
