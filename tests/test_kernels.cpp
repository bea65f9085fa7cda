// CPU kernels against plain double-precision references on random and hand-made data:
// y = x·Wᵀ for every weight dtype, tile shape and tail (vector and portable kernels,
// bit-identical across row splits), the weighted row sum, RMSNorm, RoPE, SiLU, softmax.
#include <QtTest>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>
#include <random>

#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"

namespace {

struct Weights {
    std::vector<float> f32;      // the values every dtype represents exactly
    std::vector<uint16_t> half;  // the same values stored as BF16 or F16
};

Weights random_weights(int64_t n, moe::DType dt, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1, 1);
    Weights w;
    for (int64_t i = 0; i < n; ++i) {
        float v = u(rng);
        if (dt == moe::DType::bf16) {
            w.half.push_back(moe::f32_to_bf16(v));
            v = moe::bf16_to_f32(w.half.back());
        } else if (dt == moe::DType::f16) {
            w.half.push_back(moe::f32_to_f16(v));
            v = moe::f16_to_f32(w.half.back());
        }
        w.f32.push_back(v);
    }
    return w;
}

}  // namespace

class KernelTest : public QObject {
    Q_OBJECT
private slots:
    void matmul_matches_double_reference_data() {
        QTest::addColumn<int>("dtype");
        QTest::addColumn<int>("T");
        QTest::addColumn<int>("N");
        QTest::addColumn<int>("K");
        QTest::addColumn<bool>("generic");
        for (int g = 0; g < 2; ++g)
            for (auto dt : {moe::DType::f32, moe::DType::bf16, moe::DType::f16})
                for (auto [T, N, K] : {std::tuple{1, 37, 50}, {3, 16, 64}, {4, 20, 33}, {9, 70, 128}, {2, 5, 7}, {17, 33, 300}, {1, 300, 64}, {2, 260, 1030}}) {
                    const std::string tag = std::string(moe::dtype_name(dt)) + " T" + std::to_string(T) + " N" +
                                            std::to_string(N) + " K" + std::to_string(K) + (g ? " generic" : "");
                    QTest::newRow(tag.c_str()) << static_cast<int>(dt) << T << N << K << (g == 1);
                }
    }
    void matmul_matches_double_reference() {
        QFETCH(int, dtype);
        QFETCH(int, T);
        QFETCH(int, N);
        QFETCH(int, K);
        QFETCH(bool, generic);
        const auto dt = static_cast<moe::DType>(dtype);
        std::mt19937 rng(T * 1000 + N * 10 + K);
        const Weights w = random_weights(int64_t(N) * K, dt, rng);
        std::uniform_real_distribution<float> u(-1, 1);
        const int64_t ldx = K + 3;  // strided activations
        std::vector<float> x(static_cast<size_t>(T * ldx));
        for (auto& v : x) v = u(rng);
        moe::cpu::WeightMatrix m{dt == moe::DType::f32 ? static_cast<const void*>(w.f32.data()) : w.half.data(), dt, N, K, K};
        moe::cpu::force_generic_kernels(generic);
        std::vector<float> y(static_cast<size_t>(T * N), -1), y2(y.size(), -2);
        moe::cpu::matmul_rows(x.data(), T, ldx, m, 0, N, y.data(), N);
        // Any split of the rows gives bit-identical results.
        for (int64_t n0 = 0; n0 < N; n0 += 7) moe::cpu::matmul_rows(x.data(), T, ldx, m, n0, std::min<int64_t>(N, n0 + 7), y2.data(), N);
        moe::cpu::force_generic_kernels(false);
        QVERIFY(y == y2);
        for (int t = 0; t < T; ++t)
            for (int n = 0; n < N; ++n) {
                double ref = 0;
                for (int k = 0; k < K; ++k) ref += double(x[t * ldx + k]) * w.f32[size_t(n) * K + k];
                QVERIFY2(std::abs(ref - y[t * N + n]) <= 1e-5 * (1 + std::sqrt(double(K))),
                         qPrintable(QString("t %1 n %2: %3 vs %4").arg(t).arg(n).arg(y[t * N + n]).arg(ref)));
            }
    }
    void threaded_matmul_equals_serial() {
        std::mt19937 rng(5);
        const int64_t T = 6, N = 300, K = 96;
        const Weights w = random_weights(N * K, moe::DType::bf16, rng);
        std::vector<float> x(static_cast<size_t>(T * K));
        for (auto& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
        moe::cpu::WeightMatrix m{w.half.data(), moe::DType::bf16, N, K, K};
        std::vector<float> a(static_cast<size_t>(T * N)), b(a.size());
        moe::cpu::ThreadPool one(1), two(2);
        moe::cpu::matmul(x.data(), T, K, m, a.data(), N, one);
        moe::cpu::matmul(x.data(), T, K, m, b.data(), N, two);
        QVERIFY(a == b);
    }
    void parallel_for_from_two_threads() {
        // Two threads using one pool at once (the GUI runs a chat and an ablation on one model):
        // each loop still runs every task exactly once.
        moe::cpu::ThreadPool pool(3);
        std::atomic<bool> ok{true};
        auto work = [&](int salt) {
            for (int rep = 0; rep < 300; ++rep) {
                std::vector<int> hits(64, 0);
                pool.parallel_for(64, [&](int64_t t, int) { hits[static_cast<size_t>(t)] += 1 + salt * 0; });
                for (int h : hits) ok = ok && h == 1;
            }
        };
        std::thread a(work, 1), b(work, 2);
        a.join();
        b.join();
        QVERIFY(ok.load());
    }
    void weighted_row_sum_matches_reference() {
        std::mt19937 rng(9);
        std::uniform_real_distribution<float> u(-1, 1);
        for (int64_t width : {1, 16, 40, 128, 200}) {
            const int64_t n = 13, ld = width + 5;
            std::vector<float> p(n), v(static_cast<size_t>(n * ld)), out(static_cast<size_t>(width) + 1, 7.0f);
            for (auto& e : p) e = u(rng);
            for (auto& e : v) e = u(rng);
            moe::cpu::weighted_row_sum(p.data(), n, v.data(), ld, width, out.data());
            for (int64_t d = 0; d < width; ++d) {
                double ref = 0;
                for (int64_t j = 0; j < n; ++j) ref += double(p[j]) * v[j * ld + d];
                QVERIFY(std::abs(ref - out[d]) < 1e-5);
            }
            QCOMPARE(out[width], 7.0f);  // nothing written past the row
        }
    }
    void rms_norm_by_hand() {
        const float x[4] = {1, -2, 3, -4};  // mean square 7.5
        const float w[4] = {1, 1, 2, 0.5f};
        float y[4];
        moe::cpu::rms_norm(x, w, 1, 4, 0.0f, y);
        const float s = 1.0f / std::sqrt(7.5f);
        QVERIFY(std::abs(y[0] - s) < 1e-6 && std::abs(y[1] + 2 * s) < 1e-6);
        QVERIFY(std::abs(y[2] - 6 * s) < 1e-6 && std::abs(y[3] + 2 * s) < 1e-6);
    }
    void rope_halves_layout_by_hand() {
        // hd 4: inv_freq = {1, θ^-1/2}; position 0 is the identity.
        float v[4] = {1, 2, 3, 4};
        auto r0 = moe::cpu::make_rope_tables(0, 1, 4, 100.0, 1.0);
        moe::cpu::apply_rope_halves(v, 1, 1, 4, 4, r0);
        QCOMPARE(v[0], 1.0f);
        QCOMPARE(v[3], 4.0f);
        // Position 2: pairs (x[j], x[j+2]) rotate by angles 2·1 and 2·0.1.
        float w[4] = {1, 2, 3, 4};
        auto r2 = moe::cpu::make_rope_tables(2, 1, 4, 100.0, 1.0);
        moe::cpu::apply_rope_halves(w, 1, 1, 4, 4, r2);
        const double a0 = 2.0, a1 = 0.2;
        QVERIFY(std::abs(w[0] - (1 * std::cos(a0) - 3 * std::sin(a0))) < 1e-5);
        QVERIFY(std::abs(w[2] - (3 * std::cos(a0) + 1 * std::sin(a0))) < 1e-5);
        QVERIFY(std::abs(w[1] - (2 * std::cos(a1) - 4 * std::sin(a1))) < 1e-5);
        QVERIFY(std::abs(w[3] - (4 * std::cos(a1) + 2 * std::sin(a1))) < 1e-5);
        // Linear scaling divides positions: position 4 with factor 2 equals position 2.
        auto lin = moe::cpu::make_rope_tables(4, 1, 4, 100.0, 2.0);
        QCOMPARE(lin.cos, r2.cos);
    }
    void silu_and_softmax_by_hand() {
        const float g[3] = {0, 1, -2}, u[3] = {5, 2, 1};
        float h[3];
        moe::cpu::silu_mul(g, u, 3, h);
        QCOMPARE(h[0], 0.0f);
        QVERIFY(std::abs(h[1] - 2.0 / (1 + std::exp(-1.0))) < 1e-6);
        QVERIFY(std::abs(h[2] - (-2.0 / (1 + std::exp(2.0)))) < 1e-6);
        float s[3] = {1000, 1000, 1000 - std::log(2.0f)};
        moe::cpu::softmax_row(s, 3);
        QVERIFY(std::abs(s[0] - 0.4) < 1e-5 && std::abs(s[2] - 0.2) < 1e-5);
    }
};

QTEST_APPLESS_MAIN(KernelTest)
#include "test_kernels.moc"
