// CPU vs CUDA parity of the BF16 GEMM (engine/cuda/gemm.h) on the 16B's projection shapes:
// against an exact (double) sum of the BF16-rounded activations times the BF16 weights, every
// output within 1e-5 of Σ|xᵢwᵢ| (f32 accumulation in another order), for prefill (T = 512)
// and decode (T = 1); with split activations (hi + lo), every output within 1e-5 of Σ|xᵢwᵢ|
// of the exact sum of the f32 activations themselves. Labelled gpu; without a CUDA device it is skipped with the driver's
// reason.
#include <QtTest>

#include <cmath>
#include <vector>

#include "engine/cuda/device.h"
#include "tests/cuda_test_support.h"
#include "engine/cuda/gemm.h"
#include "engine/tensor.h"
#include "tests/test_support.h"

class CudaGemmTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
    }

    void bf16GemmMatchesAnExactSum() {
        test_support::Lcg rng{4};
        // q_proj (2048 -> 2048), an expert's gate+up (2048 -> 2816), its down (1408 -> 2048).
        const int64_t shapes[][3] = {{512, 2048, 2048}, {1, 2048, 2048}, {37, 2048, 2816}, {512, 1408, 2048}};
        for (const auto& [T, in, out] : shapes) {
            std::vector<float> x(size_t(T * in));
            std::vector<uint16_t> w(size_t(out * in));
            for (auto& v : x) v = static_cast<float>(rng.next(20001)) / 10000.0f - 1.0f;
            for (auto& v : w) v = moe::f32_to_bf16((static_cast<float>(rng.next(20001)) / 10000.0f - 1.0f) * 0.05f);
            const std::vector<float> y = moe::cuda::linear_bf16(x, w, T, in, out);
            const std::vector<float> ys = moe::cuda::linear_bf16(x, w, T, in, out, true);
            QCOMPARE(y.size(), size_t(T * out));
            QCOMPARE(ys.size(), size_t(T * out));
            double worst = 0, worst_split = 0;
            for (int64_t t = 0; t < T; t += std::max<int64_t>(1, T / 16))
                for (int64_t o = 0; o < out; o += 7) {
                    double exact = 0, exact_f32 = 0, mag = 0;
                    for (int64_t i = 0; i < in; ++i) {
                        const double wi = double(moe::bf16_to_f32(w[size_t(o * in + i)]));
                        const double term = double(moe::bf16_to_f32(moe::f32_to_bf16(x[size_t(t * in + i)]))) * wi;
                        exact += term;
                        exact_f32 += double(x[size_t(t * in + i)]) * wi;
                        mag += std::abs(double(x[size_t(t * in + i)]) * wi);
                    }
                    worst = std::max(worst, std::abs(double(y[size_t(t * out + o)]) - exact) / mag);
                    worst_split = std::max(worst_split, std::abs(double(ys[size_t(t * out + o)]) - exact_f32) / mag);
                }
            qInfo("T=%lld %lld->%lld: max |y - exact| / Σ|xw| = %.3g; split activations against f32 x: %.3g", (long long)T,
                  (long long)in, (long long)out, worst, worst_split);
            QVERIFY(worst < 1e-5);
            QVERIFY(worst_split < 1e-5);  // as if x had not been rounded at all
        }
    }
};

QTEST_APPLESS_MAIN(CudaGemmTest)
#include "test_cuda_gemm.moc"
