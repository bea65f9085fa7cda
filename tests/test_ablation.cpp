// The ablation evaluator (analysis/ablation.h) and `moewb ablate`: an empty mask equals
// the baseline exactly; the baseline equals the engine's own eval; KL, loss and top-1
// agreement of one window against a brute-force recomputation; sweep builders (what each
// switches off, controls, errors); the store (schema 2, baseline reuse, read back, an old
// store upgraded); the CLI's JSON and CSV shapes and its errors. On the embedded model:
// switching the shared experts off raises loss, and switching off the most-used experts
// raises it more than the least-used.
#include <QProcess>
#include <QtTest>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "analysis/ablation.h"
#include "analysis/corpus_tokens.h"
#include "analysis/fingerprint.h"
#include "analysis/store/schema.h"
#include "analysis/store/sqlite_db.h"
#include "analysis/trace_runner.h"
#include "engine/checkpoint.h"
#include "engine/evaluate.h"
#include "engine/sampler.h"
#include "engine/scoring.h"
#include "test_store_support.h"

using namespace moe::analysis;

namespace {

const QString kMoewb = QStringLiteral(MOE_BINARY_DIR "/app/moewb");
const QString kEmbedded = QStringLiteral(MOE_SOURCE_DIR "/resources/models/default");
const QString kDatasets = QStringLiteral(MOE_SOURCE_DIR "/datasets");

const AblationScore* find_domain(const std::vector<AblationScore>& v, const std::string& name) {
    for (const auto& s : v)
        if (s.domain == name) return &s;
    return nullptr;
}

}  // namespace

class AblationTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void empty_mask_equals_baseline_exactly();
    void baseline_equals_eval();
    void scores_match_brute_force();
    void log_probabilities_against_long_double();
    void scored_rows_match_their_logits();
    void random_control_is_reproducible();
    void sweep_builders();
    void sweep_errors();
    void store_round_trip_and_baseline_reuse();
    void deleting_ablations();
    void old_store_is_upgraded();
    void cli_json_csv_and_errors();
    void cli_eval_of_a_corpus_file();
    void embedded_model_effects();

private:
    QTemporaryDir tmp_;
    std::string config_;
    std::unique_ptr<moe::Model> model_;
    std::optional<moe::Tokenizer> tok_;
    QString corpus_;
    AblationOptions opt_;

    AblationResult ablate(const std::vector<std::string>& specs, moe::MaskMode mode = moe::MaskMode::reroute) {
        std::vector<AblationCondition> cs;
        for (const auto& s : specs) {
            AblationCondition c;
            c.mask = moe::ExpertMask::parse(s, model_->config(), mode);
            cs.push_back(std::move(c));
        }
        return run_ablation(*model_, *tok_, open_corpus(corpus_.toStdString(), "test", std::nullopt), cs, opt_);
    }
};

void AblationTest::initTestCase() {
    QVERIFY(tmp_.isValid());
    config_ = store_test::tiny_config({{"max_position_embeddings", 64}});
    model_ = store_test::random_model(config_, 21);
    tok_.emplace(moe::Tokenizer::load_dir(store_test::tokenizer_dir()));
    corpus_ = tmp_.path() + "/corpus";
    store_test::write_corpus(corpus_, {"code", "english"}, 3, 40);
    opt_.context = 48;  // several windows per document, and a chunk boundary inside none
}

void AblationTest::empty_mask_equals_baseline_exactly() {
    const AblationResult r = ablate({"", "*:skip-top=0", "*:shared"});
    QCOMPARE(r.conditions.size(), size_t{3});
    for (int c = 0; c < 2; ++c) {
        for (const AblationScore& s : r.conditions[c].domains) {
            QVERIFY(s.tokens > 0);
            QCOMPARE(s.ablated_nll, s.baseline_nll);  // bit for bit
            QCOMPARE(s.kl, 0.0);
            QCOMPARE(s.top1_agree, s.tokens);
            QCOMPARE(s.delta_loss(), 0.0);
            QCOMPARE(s.ppl_ratio(), 1.0);
        }
    }
    // A real intervention changes something, and KL is positive.
    const AblationScore& off = r.conditions[2].all;
    QVERIFY(off.ablated_nll != off.baseline_nll);
    QVERIFY(off.kl > 0);
    QVERIFY(off.top1_agree <= off.tokens);
    // Per-domain baselines are the same in every condition and in result.baseline.
    for (size_t d = 0; d < r.baseline.size(); ++d)
        for (const auto& c : r.conditions) QCOMPARE(c.domains[d].baseline_nll, r.baseline[d].baseline_nll);
    QCOMPARE(r.conditions[2].all.tokens, r.baseline[0].tokens + r.baseline[1].tokens);
}

void AblationTest::baseline_equals_eval() {
    // The baseline of a domain is evaluate_loss over the same windows of each document.
    const AblationResult r = ablate({"*:shared"});
    const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
    for (size_t d = 0; d < c.domains.size(); ++d) {
        moe::EvalResult sum;
        moe::EvalResult masked;
        const moe::ExpertMask shared = moe::ExpertMask::parse("*:shared", model_->config(), moe::MaskMode::reroute);
        for (const TokenizedDocument& td : tokenize_domain(c.domains[d], *tok_, 0)) {
            const moe::EvalResult e = moe::evaluate_loss(*model_, td.ids, opt_.context, nullptr);
            sum.total_nll += e.total_nll;
            sum.predicted += e.predicted;
            const moe::EvalResult m = moe::evaluate_loss(*model_, td.ids, opt_.context, &shared);
            masked.total_nll += m.total_nll;
            masked.predicted += m.predicted;
        }
        QCOMPARE(r.baseline[d].tokens, sum.predicted);
        QVERIFY(std::abs(r.baseline[d].baseline_nll - sum.total_nll) < 1e-9 * sum.total_nll);
        QVERIFY(std::abs(r.conditions[0].domains[d].ablated_nll - masked.total_nll) < 1e-9 * masked.total_nll);
    }
}

void AblationTest::scored_rows_match_their_logits() {
    // Model::forward_scored against the scores made from forward's logits, bit for bit: the
    // kept log-probabilities, each row's NLL (none for a target < 0 or a row left out), top-1
    // and KL from the kept rows under a mask.
    const int64_t V = model_->config().vocab_size;
    std::vector<int32_t> ids;
    for (int i = 0; i < 30; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 5) % V));
    std::vector<int32_t> targets(ids.begin() + 1, ids.end());  // the last row left out
    targets[7] = -1;
    const moe::ExpertMask off = moe::ExpertMask::parse("*:shared", model_->config(), moe::MaskMode::reroute);

    std::vector<float> base, masked;
    moe::ForwardOptions fo;
    moe::Session(*model_).forward(ids, fo, base);
    fo.mask = &off;
    moe::Session(*model_).forward(ids, fo, masked);

    const auto bank = model_->make_score_bank(40);
    QCOMPARE(bank->rows(), int64_t{40});
    QCOMPARE(bank->width(), V);
    moe::ScoreRequest keep;
    keep.targets = targets;
    keep.keep = bank.get();
    keep.keep_row = 3;
    std::vector<moe::RowScore> kept, against;
    moe::Session(*model_).forward_scored(ids, {}, keep, kept);
    moe::ScoreRequest ref;
    ref.targets = targets;
    ref.reference = bank.get();
    ref.reference_row = 3;
    moe::ForwardOptions masked_opt;
    masked_opt.mask = &off;
    moe::Session(*model_).forward_scored(ids, masked_opt, ref, against);
    QCOMPARE(kept.size(), targets.size());
    QCOMPARE(against.size(), targets.size());

    std::vector<float> row(static_cast<size_t>(V)), lp(static_cast<size_t>(V)), lq(static_cast<size_t>(V));
    double kl_sum = 0;
    for (size_t r = 0; r < targets.size(); ++r) {
        const std::span<const float> b(base.data() + r * V, static_cast<size_t>(V));
        const std::span<const float> m(masked.data() + r * V, static_cast<size_t>(V));
        const moe::LogSumExp zb = moe::log_sum_exp(b), zm = moe::log_sum_exp(m);
        for (int64_t v = 0; v < V; ++v) {
            lp[v] = static_cast<float>(static_cast<double>(b[v]) - zb.log_z());
            lq[v] = static_cast<float>(static_cast<double>(m[v]) - zm.log_z());
        }
        bank->read_row(3 + static_cast<int64_t>(r), row);
        QVERIFY(std::memcmp(row.data(), lp.data(), row.size() * sizeof(float)) == 0);
        QCOMPARE(kept[r].nll, targets[r] < 0 ? 0.0 : moe::token_nll(b, targets[r], zb));
        QCOMPARE(against[r].nll, targets[r] < 0 ? 0.0 : moe::token_nll(m, targets[r], zm));
        QCOMPARE(kept[r].top, moe::argmax(b));
        QCOMPARE(against[r].top, moe::argmax(m));
        QCOMPARE(kept[r].kl, 0.0);
        QCOMPARE(against[r].kl, moe::kl_divergence(lp, lq));
        kl_sum += against[r].kl;
    }
    QVERIFY(kl_sum > 0);
}

void AblationTest::log_probabilities_against_long_double() {
    // The scores' pieces (engine/evaluate.h) against the same sums in long double with expl.
    std::mt19937_64 rng(17);
    std::uniform_real_distribution<double> wide(-708.0, 0.0);
    int64_t worst_ulp = 0;
    for (int i = 0; i < 1000000; ++i) {
        const double x =
            i % 2 ? wide(rng) : -std::ldexp(static_cast<double>(rng() % 1000000), -static_cast<int>(rng() % 40));
        if (x < -708.0) continue;  // 0 there, by definition
        const double ref = static_cast<double>(std::exp(static_cast<long double>(x)));
        const int64_t ulp = std::llabs(std::bit_cast<int64_t>(moe::exp_nonpositive(x)) - std::bit_cast<int64_t>(ref));
        worst_ulp = std::max(worst_ulp, ulp);
    }
    QVERIFY2(worst_ulp <= 1, qPrintable(QString("exp %1 ulp from the rounded long double value").arg(worst_ulp)));
    QCOMPARE(moe::exp_nonpositive(0.0), 1.0);
    QCOMPARE(moe::exp_nonpositive(-0.0), 1.0);
    QCOMPARE(moe::exp_nonpositive(-800.0), 0.0);
    QCOMPARE(moe::exp_nonpositive(-INFINITY), 0.0);
    QVERIFY(std::isnan(moe::exp_nonpositive(NAN)));

    std::normal_distribution<float> logit(0.0f, 3.0f);
    for (size_t V : {size_t(1), size_t(7), size_t(8), size_t(1000), size_t(1025), size_t(102400)}) {
        std::vector<float> a(V), b(V);
        for (size_t v = 0; v < V; ++v) {
            a[v] = logit(rng);
            b[v] = a[v] + 0.3f * logit(rng);
        }
        const moe::LogSumExp za = moe::log_sum_exp(a), zb = moe::log_sum_exp(b);
        QCOMPARE(za.max, static_cast<double>(*std::max_element(a.begin(), a.end())));
        long double sum = 0;
        for (float l : a) sum += std::exp(static_cast<long double>(l) - static_cast<long double>(za.max));
        QVERIFY2(std::abs(static_cast<long double>(za.sum) - sum) <= 1e-14L * sum,
                 qPrintable(QString("V %1: sum %2").arg(V).arg(za.sum)));
        // KL of b's log-probabilities from a's, both rounded to float as the evaluator keeps them.
        std::vector<float> la(V), lb(V);
        for (size_t v = 0; v < V; ++v) {
            la[v] = static_cast<float>(static_cast<double>(a[v]) - za.log_z());
            lb[v] = static_cast<float>(static_cast<double>(b[v]) - zb.log_z());
        }
        long double kl = 0;
        for (size_t v = 0; v < V; ++v)
            kl += std::exp(static_cast<long double>(lb[v])) * (static_cast<long double>(lb[v]) - la[v]);
        const double got = moe::kl_divergence(lb, la);
        QVERIFY2(std::abs(static_cast<long double>(got) - kl) <= 1e-12L * std::max(1.0L, std::abs(kl)),
                 qPrintable(QString("V %1: KL %2").arg(V).arg(got)));
        QCOMPARE(moe::kl_divergence(la, la), 0.0);
        // The token NLL from the row's pieces is the one computed from the logits.
        const int32_t t = static_cast<int32_t>(rng() % V);
        QCOMPARE(moe::token_nll(a, t, za), moe::token_nll(a, t));
        const long double nll = -(static_cast<long double>(a[t]) - za.max - std::log(sum));
        QVERIFY(std::abs(static_cast<long double>(moe::token_nll(a, t)) - nll) <= 1e-13L * std::max(1.0L, nll));
    }
}

void AblationTest::scores_match_brute_force() {
    // One document shorter than the context: recompute KL, NLL and argmax per position from
    // two plain forward passes, in double.
    const QString one = tmp_.path() + "/one.jsonl";
    {
        QFile f(one);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray::fromStdString(
            nlohmann::json({{"id", "d"}, {"text", store_test::sample_text(5, 25)}}).dump() + "\n"));
    }
    const Corpus c = open_corpus(one.toStdString(), "test", std::nullopt);
    const std::string spec = "L1:0,3,5;L2:k=2";
    AblationCondition cond;
    cond.mask = moe::ExpertMask::parse(spec, model_->config(), moe::MaskMode::reroute);
    AblationOptions opt;
    opt.context = 1000;
    const AblationResult r = run_ablation(*model_, *tok_, c, std::span(&cond, 1), opt);
    const std::vector<int32_t> ids = tok_->encode(read_documents(c.domains[0])[0].text);
    const int64_t V = model_->config().vocab_size;
    std::vector<float> lb, la;
    {
        moe::Session s(*model_);
        s.forward(ids, {}, lb);
        moe::Session t(*model_);
        moe::ForwardOptions fo;
        fo.mask = &cond.mask;
        t.forward(ids, fo, la);
    }
    double kl = 0, nll_b = 0, nll_a = 0;
    int64_t agree = 0;
    for (size_t p = 0; p + 1 < ids.size(); ++p) {
        const float* b = lb.data() + p * V;
        const float* a = la.data() + p * V;
        double mb = -1e300, ma = -1e300;
        for (int64_t v = 0; v < V; ++v) mb = std::max(mb, double(b[v])), ma = std::max(ma, double(a[v]));
        double zb = 0, za = 0;
        for (int64_t v = 0; v < V; ++v) zb += std::exp(b[v] - mb), za += std::exp(a[v] - ma);
        const double lzb = mb + std::log(zb), lza = ma + std::log(za);
        for (int64_t v = 0; v < V; ++v) kl += std::exp(b[v] - lzb) * ((b[v] - lzb) - (a[v] - lza));
        nll_b -= b[ids[p + 1]] - lzb;
        nll_a -= a[ids[p + 1]] - lza;
        agree += (std::max_element(b, b + V) - b) == (std::max_element(a, a + V) - a);
    }
    const AblationScore& s = r.conditions[0].domains[0];
    QCOMPARE(s.tokens, int64_t(ids.size()) - 1);
    QVERIFY2(std::abs(s.kl - kl) < 1e-4 * std::max(1.0, kl), qPrintable(QString("%1 vs %2").arg(s.kl).arg(kl)));
    QVERIFY(std::abs(s.baseline_nll - nll_b) < 1e-6 * nll_b);
    QVERIFY(std::abs(s.ablated_nll - nll_a) < 1e-6 * nll_a);
    QCOMPARE(s.top1_agree, agree);
    QVERIFY(kl > 0);
}

void AblationTest::random_control_is_reproducible() {
    // skip-random: the same seed gives the same result on any thread count; another seed
    // gives another; the number excluded matters (r=0 is the baseline).
    const AblationResult a = ablate({"*:skip-random=3@5", "*:skip-random=3@6", "*:skip-random=0@5"});
    auto many = store_test::random_model(config_, 21);
    {
        moe::LoadOptions lo;
        lo.threads = 3;
        const moe::ModelConfig cfg = moe::parse_model_config(config_, "test config");
        many = moe::make_model(cfg, moe::make_random_tensors(cfg, moe::DType::f32, 21), lo);
    }
    AblationCondition c;
    c.mask = moe::ExpertMask::parse("*:skip-random=3@5", many->config(), moe::MaskMode::reroute);
    const AblationResult b =
        run_ablation(*many, *tok_, open_corpus(corpus_.toStdString(), "test", std::nullopt), std::span(&c, 1), opt_);
    QCOMPARE(b.conditions[0].all.ablated_nll, a.conditions[0].all.ablated_nll);
    QCOMPARE(b.conditions[0].all.kl, a.conditions[0].all.kl);
    QVERIFY(a.conditions[0].all.ablated_nll != a.conditions[1].all.ablated_nll);
    QCOMPARE(a.conditions[2].all.kl, 0.0);
}

void AblationTest::sweep_builders() {
    const moe::ModelConfig& cfg = model_->config();  // 3 layers (1, 2 MoE), E = 16, k = 4
    const double ratios[] = {0, 0.0625, 0.25};
    auto st = skip_top_sweep(cfg, ratios, true, 9, moe::MaskMode::reroute);
    QCOMPARE(st.size(), size_t{6});
    QCOMPARE(st[2].mask.spec(), std::string("*:skip-top=1"));
    QCOMPARE(st[3].mask.spec(), std::string("*:skip-random=1@9"));
    QCOMPARE(st[3].control, std::string("random"));
    QCOMPARE(st[4].mask.layer(2)->skip_top, int64_t{4});
    QCOMPARE(*st[4].value, 0.25);

    // Layer 1 counts: expert e selected e times (so 15, 14, ... are the most used); layer 2
    // reversed; ties broken by index.
    std::vector<std::vector<int64_t>> sel(2, std::vector<int64_t>(16));
    for (int e = 0; e < 16; ++e) sel[0][e] = e, sel[1][e] = 100 - e;
    sel[1][7] = sel[1][8];  // a tie: 7 ranks before 8
    const double fractions[] = {0.125};
    const std::string controls[] = {"least-routed", "random"};
    auto tr = routed_sweep(cfg, sel, 42, fractions, controls, 3, moe::MaskMode::reroute);
    QCOMPARE(tr.size(), size_t{3});
    QCOMPARE(tr[0].mask.spec(), std::string("L1:14,15;L2:0,1"));
    QCOMPARE(tr[1].mask.spec(), std::string("L1:0,1;L2:14,15"));
    QCOMPARE(*tr[0].from_run, int64_t{42});
    QCOMPARE(tr[2].control, std::string("random"));
    for (int64_t l : {1, 2}) QCOMPARE(tr[2].mask.layer(l)->n_disabled, int64_t{2});
    auto again = routed_sweep(cfg, sel, 42, fractions, controls, 3, moe::MaskMode::reroute);
    QCOMPARE(again[2].mask.spec(), tr[2].mask.spec());
    std::set<std::string> seen;
    for (uint64_t seed = 0; seed < 8; ++seed)
        seen.insert(routed_sweep(cfg, sel, 42, fractions, controls, seed, moe::MaskMode::reroute)[2].mask.spec());
    QVERIFY(seen.size() >= 6);  // the seed matters

    auto sh = shared_sweep(cfg, moe::MaskMode::reroute);
    QCOMPARE(sh.size(), size_t{3});
    QCOMPARE(sh[0].mask.spec(), std::string("*:shared"));
    QCOMPARE(sh[1].mask.spec(), std::string("*:shared;*:k=5"));
    QCOMPARE(sh[2].mask.spec(), std::string("*:k=5"));
    QCOMPARE(sh[2].control, std::string("k+1"));

    const int64_t ks[] = {1, 4, 16};
    auto kk = k_sweep(cfg, ks, moe::MaskMode::reroute);
    QCOMPARE(kk[1].control, std::string("published-k"));
    QCOMPARE(kk[2].mask.layer(1)->k, int64_t{16});
}

void AblationTest::sweep_errors() {
    const moe::ModelConfig& cfg = model_->config();
    const double bad_ratio[] = {1.0};
    CHECK_ERROR(moe::ErrorKind::input, skip_top_sweep(cfg, bad_ratio, true, 1, moe::MaskMode::reroute), {"ratio 1"});
    const double too_many[] = {0.9};  // 14 of 16 leaves 2 < k
    CHECK_ERROR(moe::ErrorKind::input, skip_top_sweep(cfg, too_many, true, 1, moe::MaskMode::reroute),
                {"--ratios 0.9", "fewer than k"});
    std::vector<std::vector<int64_t>> sel(2, std::vector<int64_t>(16, 1));
    const double f[] = {0.9};
    const std::string none[] = {"bogus"};
    CHECK_ERROR(moe::ErrorKind::input, routed_sweep(cfg, sel, 1, f, {}, 1, moe::MaskMode::reroute), {"fewer than k"});
    const double ok[] = {0.25};
    CHECK_ERROR(moe::ErrorKind::input, routed_sweep(cfg, sel, 1, ok, none, 1, moe::MaskMode::reroute), {"'bogus'"});
    const int64_t bad_k[] = {0};
    CHECK_ERROR(moe::ErrorKind::input, k_sweep(cfg, bad_k, moe::MaskMode::reroute), {"k = 0"});
}

void AblationTest::store_round_trip_and_baseline_reuse() {
    const std::string db = (tmp_.path() + "/abl.db").toStdString();
    RoutingStore store = RoutingStore::open(db);
    const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
    const ModelRecord rec = describe_model(*model_, &*tok_, "");
    AblationResult r = ablate({"*:shared", "L1:2,3"});
    store_ablation(store, rec, c, "cpu", model_->dtype_summary(), opt_, r);
    QVERIFY(r.baseline_id > 0);
    AblationResult r2 = ablate({"*:k=2"});
    store_ablation(store, rec, c, "cpu", model_->dtype_summary(), opt_, r2);
    QCOMPARE(r2.baseline_id, r.baseline_id);  // the same evaluation: one baseline row
    AblationOptions other = opt_;
    other.max_tokens = 30;
    AblationResult r3 = run_ablation(*model_, *tok_, c, std::span(&r2.conditions[0].condition, 1), other);
    store_ablation(store, rec, c, "cpu", model_->dtype_summary(), other, r3);
    QVERIFY(r3.baseline_id != r.baseline_id);
    // Another step is another evaluation (its windows' logits are not the same bits): a
    // baseline of its own, found again by the same step.
    AblationOptions steps = opt_;
    steps.step_tokens = 5;
    AblationResult r4 = run_ablation(*model_, *tok_, c, std::span(&r2.conditions[0].condition, 1), steps);
    QCOMPARE(r4.step_tokens, int64_t{5});
    QCOMPARE(r.step_tokens, int64_t{256});
    store_ablation(store, rec, c, "cpu", model_->dtype_summary(), steps, r4);
    QVERIFY(r4.baseline_id != r.baseline_id && r4.baseline_id != r3.baseline_id);
    AblationResult r5 = run_ablation(*model_, *tok_, c, std::span(&r2.conditions[0].condition, 1), steps);
    store_ablation(store, rec, c, "cpu", model_->dtype_summary(), steps, r5);
    QCOMPARE(r5.baseline_id, r4.baseline_id);
    for (size_t d = 0; d < r4.baseline.size(); ++d)  // near the one-step baseline, not its bits
        QVERIFY(std::abs(r4.baseline[d].baseline_nll - r.baseline[d].baseline_nll) < 1e-4 * r.baseline[d].baseline_nll);

    const auto stored = read_ablations(store);
    QCOMPARE(stored.size(), size_t{6});
    QCOMPARE(stored[1].mask_spec, std::string("L1:2,3"));
    QCOMPARE(stored[0].context, int64_t{48});
    QCOMPARE(stored[3].max_tokens, int64_t{30});
    for (const StoredAblation& a : stored) {  // what computed each: its baseline's
        QCOMPARE(a.source, std::string("cpu"));
        QCOMPARE(a.dtype, model_->dtype_summary());
    }
    QCOMPARE(stored[0].step_tokens, int64_t{256});
    QCOMPARE(stored[4].step_tokens, int64_t{5});
    QCOMPARE(stored[5].step_tokens, int64_t{5});
    for (size_t d = 0; d < 2; ++d) {
        const AblationScore& s = stored[1].domains[d];
        const AblationScore* orig = find_domain(r.conditions[1].domains, s.domain);
        QVERIFY(orig);
        QCOMPARE(s.tokens, orig->tokens);
        QCOMPARE(s.ablated_nll, orig->ablated_nll);
        QCOMPARE(s.baseline_nll, orig->baseline_nll);
        QCOMPARE(s.kl, orig->kl);
        QCOMPARE(s.top1_agree, orig->top1_agree);
    }
    QVERIFY(store.check_integrity().empty());
    // A baseline that no longer matches (the corpus changed under the same path) is refused.
    store_test::write_corpus(corpus_ + "2", {"code", "english"}, 3, 40, 77);
    AblationResult changed = run_ablation(*model_, *tok_, open_corpus((corpus_ + "2").toStdString(), "test", std::nullopt),
                                          std::span(&r2.conditions[0].condition, 1), opt_);
    Corpus same_path = open_corpus((corpus_ + "2").toStdString(), "test", std::nullopt);
    same_path.path = c.path;
    CHECK_ERROR(moe::ErrorKind::input, store_ablation(store, rec, same_path, "cpu", model_->dtype_summary(), opt_, changed),
                {"differs", "corpus or the engine changed"});
    QCOMPARE(read_ablations(store).size(), size_t{6});  // nothing half-written
}

void AblationTest::deleting_ablations() {
    // All or none; the scores per domain go with an ablation, its baseline stays; ids are not
    // given again; `moewb delete-ablation` reports what it deleted and refuses unknown ids.
    const std::string db = (tmp_.path() + "/delete-abl.db").toStdString();
    const Corpus c = open_corpus(corpus_.toStdString(), "test", std::nullopt);
    const ModelRecord rec = describe_model(*model_, &*tok_, "");
    {
        RoutingStore store = RoutingStore::open(db);
        AblationResult r = ablate({"*:shared", "L1:2,3"});
        store_ablation(store, rec, c, "cpu", model_->dtype_summary(), opt_, r);
        AblationResult r2 = ablate({"*:k=2"});
        store_ablation(store, rec, c, "cpu", model_->dtype_summary(), opt_, r2);
        QCOMPARE(read_ablations(store).size(), size_t{3});
        CHECK_ERROR(moe::ErrorKind::input, delete_ablations(store, {2, 99}), {QString::fromStdString(db), "no ablation 99"});
        QCOMPARE(read_ablations(store).size(), size_t{3});  // nothing deleted
        const auto gone = delete_ablations(store, {3});
        QCOMPARE(gone.size(), size_t{1});
        QCOMPARE(gone[0].mask_spec, std::string("*:k=2"));
        QCOMPARE(gone[0].domains.size(), size_t{2});
        QCOMPARE(store_test::raw_text(db, "SELECT count(*) FROM ablation_domains WHERE ablation_id = 3"), std::string("0"));
        QCOMPARE(store_test::raw_text(db, "SELECT count(*) FROM ablation_baselines"), std::string("1"));
        AblationResult r3 = ablate({"L2:1"});
        store_ablation(store, rec, c, "cpu", model_->dtype_summary(), opt_, r3);
        QCOMPARE(r3.conditions[0].ablation_id, int64_t{4});  // 3 is not given again
        QCOMPARE(r3.baseline_id, r.baseline_id);              // the kept baseline, reused
        delete_ablations(store, {1, 2});
        const auto left = read_ablations(store);
        QCOMPARE(left.size(), size_t{1});
        QCOMPARE(left[0].ablation_id, int64_t{4});
        QVERIFY(store.check_integrity().empty());
    }
    auto moewb = [&](const QStringList& args, QString* out = nullptr, QString* err = nullptr) {
        QProcess p;
        p.start(kMoewb, args);
        if (!p.waitForFinished(60000)) return -1;
        if (out) *out = QString::fromUtf8(p.readAllStandardOutput());
        if (err) *err = QString::fromUtf8(p.readAllStandardError());
        return p.exitCode();
    };
    const QString qdb = QString::fromStdString(db);
    QString out, err;
    QCOMPARE(moewb({"delete-ablation", "--db", qdb, "--ablation", "4"}, &out, &err), 0);
    const auto j = nlohmann::json::parse(out.toStdString());
    QCOMPARE(j["deleted"].size(), size_t{1});
    QCOMPARE(j["deleted"][0]["ablation_id"].get<int64_t>(), int64_t{4});
    QCOMPARE(j["deleted"][0]["mask"].get<std::string>(), std::string("L2:1"));
    QCOMPARE(moewb({"delete-ablation", "--db", qdb, "--ablation", "4"}, &out, &err), 2);
    QVERIFY2(err.contains("no ablation 4") && err.contains(qdb), qPrintable(err));
    QCOMPARE(moewb({"delete-ablation", "--db", qdb, "--ablation", "x"}, &out, &err), 2);
    QCOMPARE(moewb({"delete-ablation", "--db", tmp_.path() + "/absent.db", "--ablation", "1"}, &out, &err), 2);
    QVERIFY(!QFile::exists(tmp_.path() + "/absent.db"));
}

void AblationTest::old_store_is_upgraded() {
    // A store of schema 1 (as the previous release wrote it), with a run, gains the ablation
    // tables when opened for writing and keeps its data.
    const std::string p = (tmp_.path() + "/v1.db").toStdString();
    {
        sql::Db db(p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
        schema::check_and_migrate(db, true, schema::migrations().first(1));
        QCOMPARE(db.pragma_int("user_version"), int64_t{1});
        db.exec("INSERT INTO models (name, path, architecture, config_json, content_hash, n_layers, n_routed_experts, "
                "n_shared_experts, num_experts_per_tok, vocab_size, added) VALUES ('old', '/m', 'deepseek', '{}', "
                "'fp1:x', 3, 16, 2, 4, 96, '2026-01-01T00:00:00Z')",
                "test");
    }
    StoreOptions ro;
    ro.read_only = true;
    CHECK_ERROR(moe::ErrorKind::input, RoutingStore::open(p, ro), {"must be upgraded"});
    {
        RoutingStore s = RoutingStore::open(p);
        QCOMPARE(s.schema_version(), store_schema_version());
        QVERIFY(read_ablations(s).empty());
        QVERIFY(s.check_integrity().empty());
    }
    QCOMPARE(store_test::raw_text(p, "SELECT name FROM models"), std::string("old"));
}

void AblationTest::cli_json_csv_and_errors() {
    const QString model = tmp_.path() + "/model";
    QVERIFY(store_test::write_model_dir(model, config_, 21));
    const QString db = tmp_.path() + "/cli.db";
    const QString csv = tmp_.path() + "/sweep.csv";
    QProcess p;
    p.start(kMoewb, {"ablate", "--model", model, "--corpus", corpus_, "--mask", "*:shared", "--db", db, "--max-tokens",
                     "60", "--threads", "1", "--json"});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["mask"].get<std::string>(), std::string("*:shared"));
    QCOMPARE(j["mode"].get<std::string>(), std::string("reroute"));
    QCOMPARE(j["domains"].size(), size_t{2});
    for (const char* key :
         {"domain", "tokens", "baseline_loss", "ablated_loss", "delta_loss", "ppl_ratio", "kl", "top1_agreement"})
        QVERIFY2(j["domains"][0].contains(key), key);
    const auto& d0 = j["domains"][0];
    QCOMPARE(d0["domain"].get<std::string>(), std::string("code"));
    QVERIFY(std::abs(d0["delta_loss"].get<double>() -
                     (d0["ablated_loss"].get<double>() - d0["baseline_loss"].get<double>())) < 1e-12);
    QVERIFY(std::abs(d0["ppl_ratio"].get<double>() - std::exp(d0["delta_loss"].get<double>())) < 1e-12);
    QVERIFY(d0["tokens"].get<int64_t>() > 0);
    const int64_t j0_all_tokens = j["all"]["tokens"].get<int64_t>();
    const double d0_delta = d0["delta_loss"].get<double>();

    // A sweep with its control, as CSV, stored beside the first job (same baseline).
    p.start(kMoewb, {"ablate", "--model", model, "--corpus", corpus_, "--sweep", "skip-top", "--ratios", "0,0.125",
                     "--seed", "4", "--db", db, "--max-tokens", "60", "--threads", "1", "--json", "--csv", csv});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["sweep"].get<std::string>(), std::string("skip-top"));
    QCOMPARE(j["conditions"].size(), size_t{4});
    QCOMPARE(j["conditions"][3]["mask"].get<std::string>(), std::string("*:skip-random=2@4"));
    QCOMPARE(j["conditions"][3]["control"].get<std::string>(), std::string("random"));
    QVERIFY(j["conditions"][0]["control"].is_null());
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(f.readAll()).split("\r\n", Qt::SkipEmptyParts);
    QCOMPARE(lines[0], QString("sweep,value,control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,"
                               "ppl_ratio,kl,top1_agreement"));
    QCOMPARE(lines.size(), 1 + 4 * 3);  // 4 conditions x (2 domains + all)
    QVERIFY(lines[1].startsWith("skip-top,0,,*:skip-top=0,reroute,code,"));
    RoutingStore store = RoutingStore::open(db.toStdString());
    const auto stored = read_ablations(store);
    QCOMPARE(stored.size(), size_t{5});
    QCOMPARE(stored[4].baseline_id, stored[0].baseline_id);
    // What the store kept reads back: `moewb export --ablations` (a row per domain and "all")
    // and `moewb stats --ablations`, with the numbers the jobs printed.
    p.start(kMoewb, {"export", "--db", db, "--ablations", "--csv", "-"});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const QStringList kept = QString::fromUtf8(p.readAllStandardOutput()).split("\r\n", Qt::SkipEmptyParts);
    QCOMPARE(kept[0], QString("ablation_id,model,corpus,split,max_tokens,context,created,from_run,seed,sweep,value,"
                              "control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,ppl_ratio,kl,"
                              "top1_agreement"));
    QCOMPARE(kept.size(), 1 + 5 * 3);
    QVERIFY2(kept[1].startsWith("1,") && kept[1].contains(",,,,,,*:shared,reroute,code,"), qPrintable(kept[1]));
    QCOMPARE(kept[1].split(',').mid(18, 1)[0].toDouble(), d0_delta);
    QVERIFY2(kept[3].contains(",*:shared,reroute,all,"), qPrintable(kept[3]));
    QVERIFY2(kept[15].startsWith("5,") && kept[15].contains(",4,skip-top,0.125,random,*:skip-random=2@4,reroute,all,"),
             qPrintable(kept[15]));
    p.start(kMoewb, {"stats", "--db", db, "--ablations"});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto listed = nlohmann::json::parse(p.readAllStandardOutput().toStdString())["ablations"];
    QCOMPARE(listed.size(), size_t{5});
    QCOMPARE(listed[0]["mask"].get<std::string>(), std::string("*:shared"));
    QCOMPARE(listed[0]["domains"][0]["delta_loss"].get<double>(), d0_delta);
    QCOMPARE(listed[0]["all"]["tokens"].get<int64_t>(), j0_all_tokens);
    QCOMPARE(listed[4]["control"].get<std::string>(), std::string("random"));
    QCOMPARE(listed[4]["seed"].get<int64_t>(), int64_t{4});
    QVERIFY(listed[0]["from_run"].is_null());
    QCOMPARE(listed[0]["source"].get<std::string>(), std::string("cpu"));
    QCOMPARE(listed[0]["step_tokens"].get<int64_t>(), int64_t{256});
    QVERIFY(!listed[0]["dtype"].get<std::string>().empty());

    // top-routed from a trace run in the same store.
    p.start(kMoewb, {"trace", "--model", model, "--corpus", corpus_, "--db", db, "--threads", "1", "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0);
    p.start(kMoewb, {"ablate", "--model", model, "--corpus", corpus_, "--sweep", "top-routed", "--fractions", "0.25",
                     "--from-run", "1", "--db", db, "--max-tokens", "40", "--threads", "1", "--json", "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    QByteArray err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 0, err.constData());
    QVERIFY2(!err.contains("another checkpoint"), err.constData());
    j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["conditions"].size(), size_t{3});
    QCOMPARE(j["conditions"][1]["control"].get<std::string>(), std::string("least-routed"));
    QCOMPARE(j["conditions"][0]["from_run"].get<int>(), 1);
    // The same run picks the experts of another checkpoint of the same shape: allowed, and said.
    const QString other = tmp_.path() + "/other_model";
    QVERIFY(store_test::write_model_dir(other, config_, 22));
    p.start(kMoewb, {"ablate", "--model",   other,  "--corpus",   corpus_, "--sweep", "top-routed", "--fractions",
                     "0.25",   "--control", "none", "--from-run", "1",     "--db",    db,           "--max-tokens",
                     "20",     "--threads", "1",    "--quiet"});
    QVERIFY(p.waitForFinished(60000));
    err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 0, err.constData());
    QVERIFY2(err.contains("note: run 1 was traced with another checkpoint (model"), err.constData());

    // --csv -: standard output is the CSV alone, the table on stderr.
    p.start(kMoewb, {"ablate", "--model", model, "--corpus", corpus_, "--mask", "*:shared", "--max-tokens", "40",
                     "--threads", "1", "--quiet", "--csv", "-"});
    QVERIFY(p.waitForFinished(60000));
    const QByteArray table = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 0, table.constData());
    const QStringList rows = QString::fromUtf8(p.readAllStandardOutput()).split("\r\n", Qt::SkipEmptyParts);
    QCOMPARE(rows.size(), 1 + 3);  // header, 2 domains and all
    QVERIFY(rows[0].startsWith("sweep,value,control,mask,mode,domain,"));
    for (const QString& r : rows) QCOMPARE(r.count(','), 12);
    QVERIFY(table.contains("ppl ratio"));

    struct Bad {
        QStringList args;
        QString needle;
    };
    const QStringList base{"ablate", "--model", model, "--corpus", corpus_, "--threads", "1"};
    const Bad bad[] = {
        {{"--mask", "*:shared", "--sweep", "shared"}, "exactly one of --mask"},
        {{}, "exactly one of --mask"},
        {{"--sweep", "nope"}, "'nope' is not one of"},
        {{"--sweep", "skip-top", "--ratios", "0,x"}, "'x' is not a number"},
        {{"--sweep", "skip-top", "--ratios", "0.95"}, "fewer than k"},
        {{"--sweep", "top-routed", "--fractions", "0.1", "--from-run", "1"}, "needs --db"},
        {{"--sweep", "top-routed", "--fractions", "0.1", "--from-run", "99", "--db", db}, "no run 99"},
        {{"--sweep", "k", "--values", "0"}, "k = 0"},
        {{"--mask", "L7:1"}, "does not exist"},
        {{"--mask", "*:shared", "--ratios", "0.1"}, "only applies with --sweep"},
        {{"--mask", "*:shared", "--csv", "-", "--json"}, "both go to standard output"},
        {{"--mask", "*:shared", "--db", tmp_.path() + "/corpus/code/test.jsonl"}, "not a MoE Workbench routing store"},
        {{"--mask", "*:shared", "--max-tokens", "-1"}, "--max-tokens"},
        // Refused before any work, and no store file made for a job that does not run.
        {{"--mask", "*:shared", "--db", tmp_.path() + "/never.db", "--context", "1"}, "--context"},
        {{"--mask", "*:shared", "--db", tmp_.path() + "/never.db", "--csv", tmp_.path() + "/no/such/dir/x.csv"},
         "cannot write"},
    };
    for (const Bad& b : bad) {
        p.start(kMoewb, base + b.args);
        QVERIFY(p.waitForFinished(60000));
        const QString err = p.readAllStandardError();
        QVERIFY2(p.exitCode() == 2, qPrintable(b.args.join(' ') + ": " + err));
        QVERIFY2(err.contains(b.needle), qPrintable(b.args.join(' ') + ": " + err));
    }
    // A corpus that is not UTF-8 (Latin-1): refused, naming it, before a store file is made.
    const QString latin1 = tmp_.path() + "/latin1.txt";
    QFile latin1_file(latin1);
    QVERIFY(latin1_file.open(QIODevice::WriteOnly));
    latin1_file.write("caf\xE9 au lait\n");
    latin1_file.close();
    p.start(kMoewb, {"ablate", "--model", model, "--corpus", latin1, "--mask", "*:shared", "--db", tmp_.path() + "/never.db"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(p.readAllStandardError().contains("latin1.txt: invalid UTF-8 at byte offset 3"));
    QVERIFY(!QFile::exists(tmp_.path() + "/never.db"));
}

void AblationTest::cli_eval_of_a_corpus_file() {
    // `moewb eval --text FILE.jsonl`: each document evaluated on its own (not the file's JSON
    // as one text), the loss the mean over all their predicted tokens.
    const QString model = tmp_.path() + "/eval-model";
    QVERIFY(store_test::write_model_dir(model, config_, 21));
    const auto loaded = moe::load_model(model.toStdString(), {});
    const QString file = corpus_ + "/english/test.jsonl";
    const Corpus c = open_corpus(file.toStdString(), "test", std::nullopt);
    moe::EvalResult sum;
    int64_t tokens = 0, documents = 0;
    for (const TokenizedDocument& td : tokenize_domain(c.domains[0], *tok_, 0)) {
        const moe::EvalResult e = moe::evaluate_loss(*loaded, td.ids, opt_.context, nullptr);
        sum.total_nll += e.total_nll;
        sum.predicted += e.predicted;
        tokens += static_cast<int64_t>(td.ids.size());
        ++documents;
    }
    QVERIFY(documents > 1);
    QProcess p;
    p.start(kMoewb, {"eval", "--model", model, "--text", file, "--context", QString::number(opt_.context), "--threads",
                     "1", "--json"});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["documents"].get<int64_t>(), documents);
    QCOMPARE(j["tokens"].get<int64_t>(), tokens);
    QCOMPARE(j["predicted_tokens"].get<int64_t>(), sum.predicted);
    QVERIFY2(std::abs(j["loss"].get<double>() - sum.mean_loss()) < 1e-9 * sum.mean_loss(),
             qPrintable(QString::number(j["loss"].get<double>(), 'g', 17) + " vs " + QString::number(sum.mean_loss(), 'g', 17)));
    // A plain-text file stays one text.
    const QString txt = tmp_.path() + "/one.txt";
    {
        QFile f(txt);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray::fromStdString(store_test::sample_text(3, 30)));
    }
    p.start(kMoewb, {"eval", "--model", model, "--text", txt, "--context", QString::number(opt_.context), "--json"});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto one = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(one["documents"].get<int64_t>(), int64_t{1});
    QCOMPARE(one["tokens"].get<int64_t>(), static_cast<int64_t>(tok_->encode(store_test::sample_text(3, 30)).size()));
    // What --text cannot be, each said as such.
    const std::pair<QString, QString> bad[] = {{tmp_.path() + "/absent.txt", "no such text file"},
                                               {corpus_, "is a directory"},
                                               {"/dev/null", "not a regular file"}};
    for (const auto& [path, needle] : bad) {
        p.start(kMoewb, {"eval", "--model", model, "--text", path});
        QVERIFY(p.waitForFinished(60000));
        const QString err = p.readAllStandardError();
        QVERIFY2(p.exitCode() == 2 && err.contains(needle), qPrintable(path + ": " + err));
    }
}

void AblationTest::embedded_model_effects() {
    if (!QFileInfo::exists(kEmbedded + "/model.safetensors"))
        QSKIP("resources/models/default is not in this checkout");
    // The test split, 1024 tokens per domain, through the embedded model.
    moe::LoadOptions lo;
    auto model = moe::load_model(kEmbedded.toStdString(), lo);
    const moe::Tokenizer tok = moe::Tokenizer::load_dir(kEmbedded.toStdString());
    Corpus corpus = open_corpus(kDatasets.toStdString(), "test", std::nullopt);
    AblationOptions opt;
    opt.max_tokens = 1024;
    const std::string db = (tmp_.path() + "/embedded.db").toStdString();
    RoutingStore store = RoutingStore::open(db);
    TraceOptions to;
    to.max_tokens = 1024;
    const TraceResult tr = run_trace(store, *model, describe_model(*model, &tok, kEmbedded.toStdString()), tok, corpus, to);
    QVERIFY(tr.complete);
    const auto selections = expert_selections(store, tr.run_id, model->config());
    // The counts of a run of another shape are refused, naming both shapes.
    moe::ModelConfig wider = model->config();
    wider.n_routed_experts = 256;
    CHECK_ERROR(moe::ErrorKind::input, expert_selections(store, tr.run_id, wider),
                {QString("run %1").arg(tr.run_id), "3 MoE layers (1–3) of 64 experts", "this model has 3 MoE layers (1–3) of 256"});
    const double fractions[] = {0.125};
    const std::string controls[] = {"least-routed"};
    auto conds = routed_sweep(model->config(), selections, tr.run_id, fractions, controls, 1, moe::MaskMode::reroute);
    for (auto& c : shared_sweep(model->config(), moe::MaskMode::reroute)) conds.push_back(c);
    const AblationResult r = run_ablation(*model, tok, corpus, conds, opt);
    const AblationScore& top = r.conditions[0].all;
    const AblationScore& least = r.conditions[1].all;
    const AblationScore& shared = r.conditions[2].all;
    qInfo("embedded model, %lld tokens: top-routed 1/8 off %+.4f, least-routed %+.4f, shared off %+.4f nats",
          static_cast<long long>(top.tokens), top.delta_loss(), least.delta_loss(), shared.delta_loss());
    QVERIFY(shared.delta_loss() > 0);
    QVERIFY(top.delta_loss() > least.delta_loss());
    QVERIFY(top.delta_loss() > 0);
}

QTEST_GUILESS_MAIN(AblationTest)
#include "test_ablation.moc"
