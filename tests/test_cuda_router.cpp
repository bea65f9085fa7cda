// CPU vs CUDA parity of the router (engine/cuda/router_kernels.h against route_topk): random
// router logits of the real routers' shapes — DeepSeekMoE (softmax, 64 experts, top-6),
// V2 (group-limited, 160 experts in 8 groups, top-6), V3 (sigmoid, bias, noaux_tc, 256 in 8
// groups, top-8) — with reroute masks, skip-top and skip-random. The device's expf differs
// from the host's by an ulp or two, so a token may rank differently only where two selection
// scores are that close: tokens whose top-k differs are counted, and each must have a margin
// (rank k-1 against the next) below 1e-5 on the CPU; weights agree to 1e-5 relative
// elsewhere. Labelled gpu; without a CUDA device it is skipped with the driver's reason.
#include <QtTest>

#include <cmath>
#include <vector>

#include "engine/cuda/device.h"
#include "tests/cuda_test_support.h"
#include "engine/cuda/router_kernels.h"
#include "engine/router.h"
#include "tests/test_support.h"

class CudaRouterTest : public QObject {
    Q_OBJECT

    struct Case {
        const char* name;
        int64_t E, k, G, topk_group;
        moe::ScoringFunc scoring;
        moe::TopkMethod method;
        bool norm, bias;
        float scale;
    };

private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
        const auto dev = moe::cuda::first_device();
        qInfo("device: %s (compute %d.%d, %zu MiB free)", dev->name.c_str(), dev->cc_major, dev->cc_minor,
              dev->free_bytes >> 20);
    }

    void routerMatchesTheCpu() {
        const Case cases[] = {
            {"deepseek-moe-16b", 64, 6, 1, 1, moe::ScoringFunc::softmax, moe::TopkMethod::greedy, false, false, 1.0f},
            {"v2", 160, 6, 8, 3, moe::ScoringFunc::softmax, moe::TopkMethod::group_limited_greedy, false, false, 16.0f},
            {"v3", 256, 8, 8, 4, moe::ScoringFunc::sigmoid, moe::TopkMethod::noaux_tc, true, true, 2.5f},
        };
        test_support::Lcg rng{7};
        auto next = [&] { return rng.next(); };
        for (const Case& c : cases)
            for (int mask = 0; mask < 4; ++mask) {
                const int64_t T = 2048;
                std::vector<float> logits(static_cast<size_t>(T * c.E)), bias(static_cast<size_t>(c.E));
                for (float& l : logits) l = (static_cast<float>(next() % 20001) - 10000.0f) / 2500.0f;
                for (float& b : bias) b = (static_cast<float>(next() % 2001) - 1000.0f) / 1000.0f;
                std::vector<uint8_t> excluded(static_cast<size_t>(c.E), 0);
                moe::RouterParams p;
                p.n_expert = c.E;
                p.k = c.k;
                p.norm_topk_prob = c.norm;
                p.scoring = c.scoring;
                p.method = c.method;
                p.n_group = c.G;
                p.topk_group = c.topk_group;
                p.bias = c.bias ? bias.data() : nullptr;
                p.routed_scaling_factor = c.scale;
                if (mask == 1) {  // a reroute mask: every fifth expert off
                    for (int64_t e = 0; e < c.E; e += 5) excluded[static_cast<size_t>(e)] = 1;
                    p.excluded = excluded.data();
                }
                if (mask == 2) p.skip_top = 2;
                std::vector<uint64_t> keys;
                if (mask == 3) {
                    p.skip_random = 3;
                    for (int64_t t = 0; t < T; ++t) keys.push_back(moe::router_random_key(5, 1, 0, t));
                }
                const moe::cuda::RoutedBatch gpu = moe::cuda::route_tokens(logits.data(), T, p, keys);
                moe::RouterScratch scratch;
                scratch.resize(c.E, c.G);
                int differ = 0;
                double worst_weight = 0;
                for (int64_t t = 0; t < T; ++t) {
                    std::vector<int32_t> ex(static_cast<size_t>(c.k));
                    std::vector<float> w(static_cast<size_t>(c.k));
                    moe::RouterStats st;
                    moe::RouterParams tp = p;
                    if (!keys.empty()) tp.random_key = keys[static_cast<size_t>(t)];
                    moe::route_topk(logits.data() + t * c.E, tp, scratch, ex.data(), w.data(), &st);
                    bool same = true;
                    for (int64_t r = 0; r < c.k; ++r) same = same && gpu.experts[static_cast<size_t>(t * c.k + r)] == ex[static_cast<size_t>(r)];
                    if (!same) {
                        ++differ;
                        QVERIFY2(std::abs(st.margin) < 1e-5f, qPrintable(QString("%1 token %2: margin %3").arg(c.name).arg(t).arg(st.margin)));
                        continue;
                    }
                    for (int64_t r = 0; r < c.k; ++r) {
                        const double a = w[static_cast<size_t>(r)], b = gpu.weights[static_cast<size_t>(t * c.k + r)];
                        worst_weight = std::max(worst_weight, std::abs(a - b) / std::max(std::abs(a), 1e-30));
                    }
                    QVERIFY(std::abs(st.entropy - gpu.entropy[static_cast<size_t>(t)]) < 1e-4f);
                }
                qInfo("%s, mask case %d: %d of %lld tokens routed differently (near-ties), weights within %.2g relative",
                      c.name, mask, differ, static_cast<long long>(T), worst_weight);
                QVERIFY(worst_weight < 1e-5);
                QVERIFY(differ <= T / 100);
            }
    }
};

QTEST_APPLESS_MAIN(CudaRouterTest)
#include "test_cuda_router.moc"
