// CPU vs CUDA parity of the row-wise and elementwise operations (engine/cuda/ops_kernels.h
// against engine/cpu/ops.h) on the 16B's widths: the rotary embedding rounds as the CPU and
// must be identical; RMSNorm sums squares in double in another order (at most 1 ulp apart), and
// after a residual add in the same launch it must be the add's and the norm's values exactly;
// the SiLU product goes through the device's expf (at most 2e-7 relative apart), and rounded
// to BF16 parts as it is made it must be the parts of the unrounded one bit for bit. Labelled
// gpu; without a CUDA device it is skipped with the driver's reason. The scores of rows of
// logits (engine/scoring.h) sum in double in another order than the host's: NLL and KL within
// 1e-12 of the host's (relative to the row's scale), the same top-1, log-probabilities at most
// 1 ulp apart.
#include <QtTest>

#include <bit>
#include <cmath>
#include <vector>

#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cuda/device.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/ops_kernels.h"
#include "engine/moe_dispatch.h"
#include "engine/scoring.h"
#include "engine/tensor.h"
#include "tests/cuda_test_support.h"
#include "tests/test_support.h"

namespace {
std::vector<float> random_values(test_support::Lcg& rng, size_t n, float scale) {
    std::vector<float> v(n);
    for (auto& x : v) x = (static_cast<float>(rng.next(20001)) / 10000.0f - 1.0f) * scale;
    return v;
}
double max_relative(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / std::max(std::abs(double(a[i])), 1e-30));
    return worst;
}
}  // namespace

class CudaOpsTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
    }

    void rmsNorm() {
        test_support::Lcg rng{1};
        const int64_t T = 300, n = 2048;
        const auto x = random_values(rng, size_t(T * n), 3.0f), w = random_values(rng, size_t(n), 1.5f);
        std::vector<float> want(x.size());
        moe::cpu::rms_norm(x.data(), w.data(), T, n, 1e-6f, want.data());
        const auto got = moe::cuda::rms_norm(x, w, T, n, 1e-6f);
        const double d = max_relative(want, got);
        qInfo("RMSNorm: max relative difference %.3g", d);
        QVERIFY(d <= 2.4e-7);  // 2^-22: one ulp
    }

    void rotaryEmbedding() {
        test_support::Lcg rng{2};
        const int64_t T = 257, nh = 16, hd = 128, ld = 3 * nh * hd;  // q of a fused qkv row
        auto x = random_values(rng, size_t(T * ld), 2.0f);
        auto want = x;
        const moe::cpu::RopeTables tables = moe::cpu::make_rope_tables(100, T, hd, 10000.0, 1.0);
        moe::cpu::apply_rope_halves(want.data(), T, nh, hd, ld, tables);
        moe::cuda::apply_rope_halves(x, T, nh, hd, ld, tables);
        QCOMPARE(x, want);
    }

    // The residual add and RMSNorm in one launch: the same values, bit for bit, as the add and
    // then the norm of the sum (rms_norm's own launch).
    void addAndNormInOneLaunch() {
        test_support::Lcg rng{5};
        const int64_t T = 7, n = 2048;
        const auto x = random_values(rng, size_t(T * n), 3.0f), b = random_values(rng, size_t(T * n), 1.0f),
                   w = random_values(rng, size_t(n), 1.0f);
        std::vector<float> sum(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + b[i];
        const auto [x_new, y] = moe::cuda::add_rms_norm(x, b, w, T, n, 1e-6f);
        QCOMPARE(x_new, sum);
        QCOMPARE(y, moe::cuda::rms_norm(sum, w, T, n, 1e-6f));
    }

    // Rows of the 16B's vocabulary scored on the device against the host (score_rows_on_host):
    // logits of several scales, a tie for the top, a NaN (never the top), a row without a
    // target, each against a reference row of other logits.
    void rowScores() {
        test_support::Lcg rng{11};
        const int64_t n = 48, V = 102400;
        std::vector<float> logits, other;
        for (int64_t r = 0; r < n; ++r) {
            const float scale = 1.0f + static_cast<float>(r % 6) * 4.0f;
            const auto a = random_values(rng, static_cast<size_t>(V), scale),
                       b = random_values(rng, static_cast<size_t>(V), scale);
            logits.insert(logits.end(), a.begin(), a.end());
            other.insert(other.end(), b.begin(), b.end());
        }
        logits[3 * V + 70000] = logits[3 * V + 900] = 99.0f;  // a tie: the first wins
        logits[5 * V + 17] = std::nanf("");                   // skipped by the top
        logits[6 * V + 50] = 60.0f;
        std::vector<int32_t> targets;
        for (int64_t r = 0; r < n; ++r) targets.push_back(static_cast<int32_t>(rng.next(static_cast<uint32_t>(V))));
        targets[9] = -1;
        std::vector<int32_t> none(targets.size(), -1);

        moe::cpu::ThreadPool pool(2);
        moe::HostScoreBank ref_bank(n, V), kept_bank(n, V);
        std::vector<moe::RowScore> want, ignored;
        moe::ScoreRequest make_ref;
        make_ref.targets = none;
        make_ref.keep = &ref_bank;
        moe::score_rows_on_host(pool, other, V, make_ref, ignored);
        moe::ScoreRequest req;
        req.targets = targets;
        req.keep = &kept_bank;
        req.reference = &ref_bank;
        moe::score_rows_on_host(pool, logits, V, req, want);
        const std::vector<float> reference(ref_bank.row(0), ref_bank.row(0) + n * V);
        std::vector<float> kept;
        const auto got = moe::cuda::score_rows(logits, V, targets, reference, &kept);
        QCOMPARE(got.size(), want.size());

        double worst_nll = 0, worst_kl = 0;
        int64_t worst_ulp = 0;
        for (int64_t r = 0; r < n; ++r) {
            const auto& w = want[static_cast<size_t>(r)];
            const auto& g = got[static_cast<size_t>(r)];
            QCOMPARE(g.top, w.top);
            if (r == 5) {  // its sums are NaN on both sides
                QVERIFY(std::isnan(g.nll) && std::isnan(w.nll));
                continue;
            }
            worst_nll = std::max(worst_nll, std::abs(g.nll - w.nll) / std::max(1.0, std::abs(w.nll)));
            double scale = 1.0;  // Σ p·|ln p − ln q|: what the KL's terms add up to without cancelling
            for (int64_t v = 0; v < V; ++v) {
                const double p = reference[r * V + v], q = kept_bank.row(r)[v];
                scale += std::exp(p) * std::abs(p - q);
                const int64_t ulp = std::abs(static_cast<int64_t>(std::bit_cast<int32_t>(kept[r * V + v])) -
                                             std::bit_cast<int32_t>(kept_bank.row(r)[v]));
                worst_ulp = std::max(worst_ulp, ulp);
            }
            worst_kl = std::max(worst_kl, std::abs(g.kl - w.kl) / scale);
        }
        QCOMPARE(want[9].nll, 0.0);
        QCOMPARE(got[9].nll, 0.0);
        QCOMPARE(got[3].top, int32_t{900});
        QCOMPARE(got[6].top, int32_t{50});
        qInfo("row scores: NLL within %.3g, KL within %.3g (relative), log-probabilities within %lld ulp", worst_nll,
              worst_kl, static_cast<long long>(worst_ulp));
        QVERIFY(worst_nll <= 1e-12);
        QVERIFY(worst_kl <= 1e-12);
        QVERIFY(worst_ulp <= 1);
    }

    void siluMul() {
        test_support::Lcg rng{3};
        const auto g = random_values(rng, 1 << 20, 12.0f), u = random_values(rng, 1 << 20, 2.0f);
        std::vector<float> want(g.size());
        moe::cpu::silu_mul(g.data(), u.data(), int64_t(g.size()), want.data());
        const auto got = moe::cuda::silu_mul(g, u);
        const double d = max_relative(want, got);
        qInfo("SiLU product: max relative difference %.3g", d);
        QVERIFY(d <= 5e-7);
    }

    // The SiLU-gated product of gate and up side by side, rounded to BF16 parts as it is made:
    // bit for bit round_split's parts of the product the device makes unrounded.
    void siluMulRoundedAsMade() {
        test_support::Lcg rng{4};
        const int64_t rows = 37, F = 1408;
        const auto gu = random_values(rng, size_t(rows * 2 * F), 12.0f);
        std::vector<float> g(size_t(rows * F)), u(size_t(rows * F));
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t f = 0; f < F; ++f) {
                g[size_t(r * F + f)] = gu[size_t(r * 2 * F + f)];
                u[size_t(r * F + f)] = gu[size_t(r * 2 * F + F + f)];
            }
        const std::vector<float> h = moe::cuda::silu_mul(g, u);
        for (const bool split : {false, true}) {
            const moe::cuda::Bf16Parts parts = moe::cuda::silu_mul_round_bf16(gu, rows, F, split);
            QCOMPARE(parts.hi.size(), h.size());
            QCOMPARE(parts.lo.size(), split ? h.size() : size_t(0));
            for (size_t i = 0; i < h.size(); ++i) {
                QCOMPARE(parts.hi[i], moe::f32_to_bf16(h[i]));
                if (split) QCOMPARE(parts.lo[i], moe::f32_to_bf16(h[i] - moe::bf16_to_f32(parts.hi[i])));
            }
        }
    }

    // The same over a stacked layout (padded rows' hi and lo parts' products at rows of their
    // own, dispatch::stacked_hi): each padded row's gate and up are the sums of its two rows,
    // and h's parts land at the same two rows — bit for bit the parts of the product of the sums.
    void siluMulOfStackedParts() {
        test_support::Lcg rng{5};
        const int64_t F = 1408;
        const std::vector<int64_t> padded = {0, 64, 64, 192, 256};  // an expert without rows
        const int64_t E = int64_t(padded.size()) - 1, n_pad = padded.back();
        const auto two = random_values(rng, size_t(2 * n_pad * 2 * F), 12.0f);
        std::vector<float> sums(size_t(n_pad * 2 * F));
        for (int64_t p = 0; p < n_pad; ++p) {
            const int64_t e = moe::dispatch::segment_of(padded.data(), E, p);
            const int64_t rh = moe::dispatch::stacked_hi(padded.data(), e, p), rl = moe::dispatch::stacked_lo(padded.data(), e, p);
            for (int64_t j = 0; j < 2 * F; ++j)
                sums[size_t(p * 2 * F + j)] = two[size_t(rh * 2 * F + j)] + two[size_t(rl * 2 * F + j)];
        }
        const moe::cuda::Bf16Parts want = moe::cuda::silu_mul_round_bf16(sums, n_pad, F, true);
        const std::vector<uint16_t> got = moe::cuda::silu_mul_round_stacked_bf16(two, padded, F);
        QCOMPARE(got.size(), size_t(2 * n_pad * F));
        for (int64_t p = 0; p < n_pad; ++p) {
            const int64_t e = moe::dispatch::segment_of(padded.data(), E, p);
            const int64_t rh = moe::dispatch::stacked_hi(padded.data(), e, p), rl = moe::dispatch::stacked_lo(padded.data(), e, p);
            for (int64_t f = 0; f < F; ++f) {
                QCOMPARE(got[size_t(rh * F + f)], want.hi[size_t(p * F + f)]);
                QCOMPARE(got[size_t(rl * F + f)], want.lo[size_t(p * F + f)]);
            }
        }
    }
};

QTEST_APPLESS_MAIN(CudaOpsTest)
#include "test_cuda_ops.moc"
