// Unit tests of the softmax top-k router (engine/router.h) on hand-computed cases —
// selection order and tie rule, reroute exclusions, skip-top, renormalisation, the
// statistics the observer reports — and of ExpertMask SPEC parsing.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/expert_mask.h"
#include "engine/model_config.h"
#include "engine/router.h"
#include "tests/test_support.h"

namespace {

struct Routed {
    std::vector<int32_t> experts;
    std::vector<float> weights;
    moe::RouterStats stats;
};

Routed route(const std::vector<float>& logits, int64_t k, bool norm = false, const std::vector<uint8_t>& excluded = {},
             int64_t skip_top = 0) {
    const int64_t E = static_cast<int64_t>(logits.size());
    moe::RouterParams p;
    p.n_expert = E;
    p.k = k;
    p.norm_topk_prob = norm;
    p.excluded = excluded.empty() ? nullptr : excluded.data();
    p.skip_top = skip_top;
    moe::RouterScratch scratch;
    scratch.resize(E, 1);
    Routed r;
    r.experts.resize(k);
    r.weights.resize(k);
    moe::route_topk(logits.data(), p, scratch, r.experts.data(), r.weights.data(), &r.stats);
    return r;
}

// softmax of {0, 1, 2, 3}
std::vector<double> probs0123() {
    double z = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    return {1 / z, std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z};
}

moe::ModelConfig small_config() {
    return moe::parse_model_config(R"({"model_type":"deepseek","vocab_size":16,"hidden_size":8,
        "intermediate_size":16,"moe_intermediate_size":4,"num_hidden_layers":3,"num_attention_heads":2,
        "n_routed_experts":8,"n_shared_experts":1,"num_experts_per_tok":2,"first_k_dense_replace":1})",
                                   "test-config");
}

}  // namespace

class RouterTest : public QObject {
    Q_OBJECT
private slots:
    void picks_highest_probabilities_in_rank_order() {
        const auto p = probs0123();
        Routed r = route({0, 1, 2, 3}, 2);
        QCOMPARE(r.experts, (std::vector<int32_t>{3, 2}));
        QVERIFY(std::abs(r.weights[0] - p[3]) < 1e-6);
        QVERIFY(std::abs(r.weights[1] - p[2]) < 1e-6);
        QVERIFY(std::abs(r.stats.selected_mass - (p[3] + p[2])) < 1e-6);
        QVERIFY(std::abs(r.stats.margin - (p[2] - p[1])) < 1e-6);
        double h = 0;
        for (double q : p) h -= q * std::log(q);
        QVERIFY(std::abs(r.stats.entropy - h) < 1e-6);
    }
    // Many random tokens with frequent ties, masks and skip-top against a sort-based
    // reference: the selections of engine/router_core.h equal a full sort by the tie rule.
    void selection_equals_a_full_sort_by_the_tie_rule() {
        test_support::Lcg rng{12345};
        auto next = [&] { return rng.next(); };
        for (int trial = 0; trial < 2000; ++trial) {
            const int64_t E = 1 + next() % 40;
            std::vector<float> logits(static_cast<size_t>(E));
            for (float& l : logits) l = static_cast<float>(next() % 5);  // 5 values: many ties
            std::vector<uint8_t> excluded(static_cast<size_t>(E), 0);
            int64_t eligible = E;
            for (auto& x : excluded)
                if (eligible > 1 && next() % 4 == 0) {
                    x = 1;
                    --eligible;
                }
            const int64_t skip = std::min<int64_t>(next() % 3, eligible - 1);
            const int64_t k = 1 + next() % static_cast<uint32_t>(eligible - skip);
            const Routed r = route(logits, k, false, excluded, skip);
            // Reference: eligible experts sorted by (probability desc, index asc); drop `skip`.
            std::vector<int32_t> ids;
            for (int32_t e = 0; e < E; ++e)
                if (!excluded[static_cast<size_t>(e)]) ids.push_back(e);
            std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
                return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
            });
            const std::vector<int32_t> want(ids.begin() + skip, ids.begin() + skip + k);
            QCOMPARE(r.experts, want);
        }
    }
    void ties_go_to_the_lower_index() {
        Routed r = route({1, 1, 1, 0}, 2);
        QCOMPARE(r.experts, (std::vector<int32_t>{0, 1}));
        QCOMPARE(r.stats.margin, 0.0f);
        Routed u = route({5, 5, 5, 5}, 4);
        QCOMPARE(u.experts, (std::vector<int32_t>{0, 1, 2, 3}));
        QVERIFY(std::abs(u.stats.entropy - std::log(4.0)) < 1e-6);
        QVERIFY(std::abs(u.stats.margin - 0.25) < 1e-6);  // nothing left over: margin is the k-th probability
    }
    void renormalises_only_when_asked_and_k_above_one() {
        const auto p = probs0123();
        Routed r = route({0, 1, 2, 3}, 2, true);
        QVERIFY(std::abs(r.weights[0] - p[3] / (p[3] + p[2])) < 1e-6);
        QVERIFY(std::abs(r.weights[0] + r.weights[1] - 1.0f) < 1e-6);
        Routed one = route({0, 1, 2, 3}, 1, true);  // published: no renormalisation at k = 1
        QVERIFY(std::abs(one.weights[0] - p[3]) < 1e-6);
    }
    void reroute_excludes_disabled_experts_but_keeps_their_probability_mass() {
        const auto p = probs0123();
        Routed r = route({0, 1, 2, 3}, 2, false, {0, 0, 0, 1});
        QCOMPARE(r.experts, (std::vector<int32_t>{2, 1}));
        QVERIFY(std::abs(r.weights[0] - p[2]) < 1e-6);  // not re-softmaxed over the enabled experts
        QVERIFY(std::abs(r.stats.margin - (p[1] - p[0])) < 1e-6);
    }
    void skip_top_excludes_the_most_probable_eligible() {
        Routed r = route({0, 1, 2, 3}, 2, false, {}, 1);
        QCOMPARE(r.experts, (std::vector<int32_t>{2, 1}));
        Routed both = route({0, 1, 2, 3}, 2, false, {0, 0, 1, 0}, 1);  // eligible {0,1,3}, skip 3
        QCOMPARE(both.experts, (std::vector<int32_t>{1, 0}));
    }
    void skip_random_excludes_r_random_eligible_experts() {
        // 16 experts with distinct probabilities; k = 4, skip-random = 5.
        const int64_t E = 16, k = 4, r = 5;
        std::vector<float> logits(E);
        for (int64_t e = 0; e < E; ++e) logits[e] = 0.1f * static_cast<float>((e * 7) % E);
        std::vector<uint8_t> excluded(E, 0);
        excluded[3] = 1;  // reroute exclusion: never selected, never counted among the random ones
        std::vector<int> times_excluded(E, 0);
        const int keys = 4000;
        for (int key = 0; key < keys; ++key) {
            moe::RouterParams p;
            p.n_expert = E;
            p.k = k;
            p.excluded = excluded.data();
            p.skip_random = r;
            p.random_key = moe::router_random_key(7, 2, 11, key);
            std::vector<float> w(k);
            std::vector<int32_t> ex(k), again(k);
            moe::RouterScratch scratch;
            scratch.resize(E, 1);
            moe::route_topk(logits.data(), p, scratch, again.data(), w.data(), nullptr);
            moe::route_topk(logits.data(), p, scratch, ex.data(), w.data(), nullptr);
            const std::vector<int32_t>& order = scratch.order;
            QCOMPARE(again, ex);  // a function of the key
            // The r random ones are order[n-r, n): distinct, eligible, and the selection is the
            // top-k of the rest.
            std::vector<uint8_t> gone(E, 0);
            for (int64_t j = E - 1 - r; j < E - 1; ++j) {
                const int32_t e = order[static_cast<size_t>(j)];
                QVERIFY(e != 3 && !gone[e]);
                gone[e] = 1;
                ++times_excluded[e];
            }
            std::vector<int32_t> rest;
            for (int32_t e = 0; e < E; ++e)
                if (e != 3 && !gone[e]) rest.push_back(e);
            std::sort(rest.begin(), rest.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
            rest.resize(k);
            QCOMPARE(ex, rest);
        }
        // Uniform over the 15 eligible experts: each excluded r/15 of the time (±15%).
        for (int64_t e = 0; e < E; ++e) {
            if (e == 3) {
                QCOMPARE(times_excluded[e], 0);
                continue;
            }
            const double expect = keys * static_cast<double>(r) / 15.0;
            QVERIFY2(std::abs(times_excluded[e] - expect) < 0.15 * expect, qPrintable(QString::number(e)));
        }
        QVERIFY(moe::router_random_key(1, 2, 3, 4) != moe::router_random_key(1, 2, 3, 5));
        QVERIFY(moe::router_random_key(1, 2, 3, 4) != moe::router_random_key(1, 2, 4, 4));
        QVERIFY(moe::router_random_key(1, 2, 3, 4) != moe::router_random_key(2, 2, 3, 4));
    }

    void mask_spec_parses() {
        const auto c = small_config();
        auto m = moe::ExpertMask::parse("L1:0,3; *:shared ;L2:k=3;*:skip-top=1", c, moe::MaskMode::drop);
        QCOMPARE(m.mode(), moe::MaskMode::drop);
        QVERIFY(m.layer(0) == nullptr);
        const auto* l1 = m.layer(1);
        QVERIFY(l1);
        QCOMPARE(l1->n_disabled, int64_t(2));
        QVERIFY(l1->disabled[0] && l1->disabled[3] && !l1->disabled[1]);
        QVERIFY(l1->shared_off);
        QCOMPARE(l1->k, int64_t(2));
        QCOMPARE(l1->skip_top, int64_t(1));
        QCOMPARE(m.layer(2)->k, int64_t(3));
        QVERIFY(moe::ExpertMask::parse("", c, moe::MaskMode::reroute).empty());
        // A layer's own k overrides the general one whatever the order.
        auto o = moe::ExpertMask::parse("L1:k=3;*:k=1", c, moe::MaskMode::reroute);
        QCOMPARE(o.layer(1)->k, int64_t(3));
        QCOMPARE(o.layer(2)->k, int64_t(1));
        QCOMPARE(moe::ExpertMask::parse("*:1,2", c, moe::MaskMode::reroute).layers().size(), size_t(2));
        auto rnd = moe::ExpertMask::parse("*:skip-random=3@42;L2:skip-random=2", c, moe::MaskMode::reroute);
        QCOMPARE(rnd.layer(1)->skip_random, int64_t(3));
        QCOMPARE(rnd.layer(1)->random_seed, uint64_t(42));
        QCOMPARE(rnd.layer(2)->skip_random, int64_t(2));
        QCOMPARE(rnd.layer(2)->random_seed, uint64_t(0));
    }
    void mask_spec_errors_name_the_bad_part_data() {
        QTest::addColumn<QString>("spec");
        QTest::addColumn<QString>("needle");
        QTest::newRow("dense layer") << "L0:1" << "dense layer";
        QTest::newRow("no such layer") << "L9:1" << "does not exist";
        QTest::newRow("expert too big") << "L1:8" << "expert 8 does not exist";
        QTest::newRow("garbage expert") << "L1:abc" << "'abc'";
        QTest::newRow("no colon") << "L1" << "expected";
        QTest::newRow("bad target") << "X1:2" << "L<number>";
        QTest::newRow("k zero") << "*:k=0" << "k must be";
        QTest::newRow("k too big") << "*:k=9" << "k must be";
        QTest::newRow("skip too big") << "*:skip-top=7" << "fewer than k";
        QTest::newRow("all disabled") << "L1:0,1,2,3,4,5,6" << "fewer than k";
        QTest::newRow("empty list") << "L1:" << "no experts";
        QTest::newRow("skip-random bad seed") << "*:skip-random=2@x" << "skip-random=<r>@<seed>";
        QTest::newRow("skip-random too big") << "*:skip-random=8" << "skip-random=<r>";
        QTest::newRow("skip-random + top too many") << "*:skip-top=3;*:skip-random=4" << "fewer than k";
    }
    void mask_spec_errors_name_the_bad_part() {
        QFETCH(QString, spec);
        QFETCH(QString, needle);
        const auto c = small_config();
        try {
            moe::ExpertMask::parse(spec.toStdString(), c, moe::MaskMode::reroute);
            QFAIL("accepted a bad spec");
        } catch (const moe::Error& e) {
            QCOMPARE(e.kind(), moe::ErrorKind::input);
            QVERIFY2(QString(e.what()).contains(needle), e.what());
        }
    }
    void drop_mode_allows_disabling_all_but_needs_k_for_skip() {
        const auto c = small_config();
        auto m = moe::ExpertMask::parse("L1:0,1,2,3,4,5,6,7", c, moe::MaskMode::drop);
        QCOMPARE(m.layer(1)->n_disabled, int64_t(8));
    }

    // --- group-limited (V2) and bias-corrected (V3) routing, hand-checkable cases ---
    void group_limited_keeps_the_best_groups() {
        // 8 experts in 4 groups of 2; logits give probabilities in the order of the logits.
        // Groups by best expert: g0 {0,1} best 1.0, g1 {2,3} best 3.0, g2 {4,5} best 2.5,
        // g3 {6,7} best 2.9. topk_group 2 keeps g1 and g3; expert 4 (2.5) is better than
        // expert 7 (0.1) but its group is not kept.
        const std::vector<float> logits{1.0f, 0.5f, 3.0f, 2.0f, 2.5f, 0.2f, 2.9f, 0.1f};
        moe::RouterParams p;
        p.n_expert = 8;
        p.k = 3;
        p.method = moe::TopkMethod::group_limited_greedy;
        p.n_group = 4;
        p.topk_group = 2;
        p.routed_scaling_factor = 16.0f;
        moe::RouterScratch s;
        s.resize(8, 4);
        std::vector<int32_t> ex(3), groups(2);
        std::vector<float> w(3), sel(3);
        moe::route_topk(logits.data(), p, s, ex.data(), w.data(), nullptr, sel.data(), groups.data());
        QCOMPARE(ex, (std::vector<int32_t>{2, 6, 3}));
        QCOMPARE(groups, (std::vector<int32_t>{1, 3}));
        double z = 0;
        for (float l : logits) z += std::exp(double(l));
        // Weights: the softmax probability times routed_scaling_factor (not renormalised).
        QVERIFY(std::abs(w[0] - 16.0 * std::exp(3.0) / z) < 1e-5);
        QVERIFY(std::abs(sel[2] - std::exp(2.0) / z) < 1e-6);

        // Reroute: disabling both experts of group 1 makes it unselectable; g3 and g2 remain.
        std::vector<uint8_t> off(8, 0);
        off[2] = off[3] = 1;
        p.excluded = off.data();
        moe::route_topk(logits.data(), p, s, ex.data(), w.data(), nullptr, sel.data(), groups.data());
        QCOMPARE(groups, (std::vector<int32_t>{3, 2}));
        QCOMPARE(ex, (std::vector<int32_t>{6, 4, 5}));
    }
    void bias_changes_selection_not_weights() {
        // Sigmoid scores; the bias lifts expert 3 above expert 1 for selection, but its weight
        // stays its own unbiased score (renormalised, times the scaling factor).
        const std::vector<float> logits{2.0f, 1.0f, 0.0f, 0.5f};
        const std::vector<float> bias{0.0f, 0.0f, 0.0f, 0.3f};
        moe::RouterParams p;
        p.n_expert = 4;
        p.k = 2;
        p.scoring = moe::ScoringFunc::sigmoid;
        p.method = moe::TopkMethod::noaux_tc;
        p.norm_topk_prob = true;
        p.routed_scaling_factor = 2.5f;
        moe::RouterScratch s;
        s.resize(4, 1);
        std::vector<int32_t> ex(2);
        std::vector<float> w(2), sel(2);
        auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
        moe::route_topk(logits.data(), p, s, ex.data(), w.data(), nullptr, sel.data());
        QCOMPARE(ex, (std::vector<int32_t>{0, 1}));  // without the bias: 0.88, 0.73 vs 0.62
        p.bias = bias.data();
        moe::route_topk(logits.data(), p, s, ex.data(), w.data(), nullptr, sel.data());
        QCOMPARE(ex, (std::vector<int32_t>{3, 0}));  // 0.62 + 0.3 = 0.92 > 0.88
        QVERIFY(std::abs(sel[0] - (sig(0.5) + 0.3)) < 1e-6);
        const double w3 = sig(0.5), w0 = sig(2.0);
        QVERIFY(std::abs(w[0] - 2.5 * w3 / (w3 + w0)) < 1e-6);
        QVERIFY(std::abs(w[1] - 2.5 * w0 / (w3 + w0)) < 1e-6);
    }
    void noaux_groups_score_by_top_two_and_fill_with_zero() {
        // 8 experts, 4 groups of 2, keep 1 group, k = 3: the kept group has only 2 experts,
        // so the third is the best of the rest at score 0.0 (the published 0.0 fill), i.e.
        // the lowest index among them, with its unbiased weight.
        const std::vector<float> logits{0.0f, 0.0f, 3.0f, -3.0f, 1.0f, 1.0f, -1.0f, -1.0f};
        moe::RouterParams p;
        p.n_expert = 8;
        p.k = 3;
        p.scoring = moe::ScoringFunc::sigmoid;
        p.method = moe::TopkMethod::noaux_tc;
        p.n_group = 4;
        p.topk_group = 1;
        moe::RouterScratch s;
        s.resize(8, 4);
        std::vector<int32_t> ex(3), groups(1);
        std::vector<float> w(3), sel(3);
        moe::route_topk(logits.data(), p, s, ex.data(), w.data(), nullptr, sel.data(), groups.data());
        // group sums: g0 0.5+0.5=1.0, g1 0.953+0.047=1.0 (tie), g2 0.731·2=1.462, g3 0.538
        QCOMPARE(groups, (std::vector<int32_t>{2}));
        QCOMPARE(ex, (std::vector<int32_t>{4, 5, 0}));
        QCOMPARE(sel[2], 0.0f);
        QVERIFY(std::abs(w[2] - 0.5) < 1e-6);  // the unbiased sigmoid of expert 0
    }
};

QTEST_APPLESS_MAIN(RouterTest)
#include "test_router.moc"
