// CPU vs CUDA parity of causal attention (engine/cuda/attention_kernels.h) against a double
// computation of the same definition (the CPU backend's: softmax(q·kᵀ/√hd) v over the visible
// positions, grouped KV heads): the 16B's heads (16 × 128) for a 512-token prefill and for
// decode at position 2047, grouped KV heads, small and odd shapes, the decode graph's launch
// (position read on the device) and heads wider than the tiled kernel takes; every output
// written (poisoned first) and within 1e-5 of the largest |v| in f32; decode through every
// kernel (DecodeAttention) likewise, each decode launched twice on the same buffers. The same prefills on the
// tensor cores (heads of 64 and 128): split into two BF16 parts each operand is within about
// 2⁻¹⁶ of itself (products of hi + lo missing lo·lo' and lo's rounding), the scores to about
// 1e-5 at worst and the output to a few 1e-6 typically (6.6e-6 measured on an H100): within
// 5e-5; rounded to one BF16 part (2⁻⁸ of each operand, 4.1e-3 measured), within 2e-2. Every
// path again with a BF16 KV cache, against the definition on the rounded keys and values, to
// the same tolerances. The tensor-core prefills through both kernels (PrefillAttention: tiles,
// pipelined), with either cache; the pipelined kernel with 32 query rows a warp equal, value for
// value, to the one with 16. Labelled gpu; without a CUDA device it is skipped with the driver's reason.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/cuda/attention_kernels.h"
#include "engine/cuda/device.h"
#include "engine/tensor.h"
#include "tests/cuda_test_support.h"
#include "tests/test_support.h"

namespace {

struct Case {
    int64_t T, pos0, nh, nkv, hd;
    bool device_pos;
};

// Random queries, keys and values for c: keys and values for P positions.
struct Inputs {
    std::vector<float> q, k, v;
};
Inputs inputs(test_support::Lcg& rng, const Case& c, int64_t P) {
    auto fill = [&](size_t n, float scale) {
        std::vector<float> x(n);
        for (auto& v : x) v = (static_cast<float>(rng.next(20001)) / 10000.0f - 1.0f) * scale;
        return x;
    };
    return {fill(size_t(c.T * c.nh * c.hd), 2.0f), fill(size_t(P * c.nkv * c.hd), 2.0f), fill(size_t(P * c.nkv * c.hd), 1.0f)};
}

// The largest |got - definition| over every 32nd query (at least each one) and every head,
// the definition in double.
double worst_error(const Inputs& in, const Case& c, const std::vector<float>& got) {
    double worst = 0;
    const double scale = 1.0 / std::sqrt(double(c.hd));
    for (int64_t t = 0; t < c.T; t += std::max<int64_t>(1, c.T / 32))
        for (int64_t h = 0; h < c.nh; ++h) {
            const int64_t kvh = h / (c.nh / c.nkv), visible = c.pos0 + t + 1;
            std::vector<double> s(static_cast<size_t>(visible));
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < visible; ++j) {
                double d = 0;
                for (int64_t i = 0; i < c.hd; ++i)
                    d += double(in.q[size_t((t * c.nh + h) * c.hd + i)]) * in.k[size_t((j * c.nkv + kvh) * c.hd + i)];
                s[size_t(j)] = d * scale;
                m = std::max(m, s[size_t(j)]);
            }
            for (auto& x : s) sum += (x = std::exp(x - m));
            for (int64_t i = 0; i < c.hd; ++i) {
                double o = 0;
                for (int64_t j = 0; j < visible; ++j) o += s[size_t(j)] * in.v[size_t((j * c.nkv + kvh) * c.hd + i)];
                worst = std::max(worst, std::abs(o / sum - got[size_t((t * c.nh + h) * c.hd + i)]));
            }
        }
    return worst;
}

}  // namespace

class CudaAttentionTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
    }

    void attentionMatchesTheDefinition() {
        test_support::Lcg rng{5};
        // Tiled prefill (head widths of 1-4 lanes' worth, partial tiles, an offset start),
        // split decode (host and device position, the first position), and the wide-head path.
        // The tensor-core maths through both prefill kernels (PrefillAttention).
        using moe::cuda::AttentionMath;
        using moe::cuda::PrefillAttention;
        const AttentionMath maths[] = {AttentionMath::f32, AttentionMath::split_bf16, AttentionMath::bf16,
                                       AttentionMath::split_bf16, AttentionMath::bf16};
        const PrefillAttention kernels[] = {PrefillAttention::tiles, PrefillAttention::tiles, PrefillAttention::tiles,
                                            PrefillAttention::pipelined, PrefillAttention::pipelined};
        const double tolerance[] = {1e-5, 5e-5, 2e-2, 5e-5, 2e-2};
        const char* math_name[] = {"f32", "split bf16", "bf16", "pipelined split bf16", "pipelined bf16"};
        for (int mi = 0; mi < 5; ++mi)
            for (const Case c :
                 {Case{512, 0, 16, 16, 128, false}, Case{1, 2047, 16, 16, 128, false}, Case{64, 100, 8, 2, 64, false},
                  Case{5, 0, 4, 4, 16, false}, Case{100, 37, 6, 3, 96, false}, Case{1, 0, 4, 2, 32, false},
                  Case{1, 700, 16, 16, 128, true}, Case{3, 10, 2, 1, 192, false}, Case{130, 5, 4, 2, 128, false},
                  Case{70, 0, 2, 2, 64, false}, Case{2, 3, 2, 2, 64, false}}) {
                const int64_t P = c.pos0 + c.T + (c.device_pos ? 300 : 0);  // device position: room beyond
                const Inputs in = inputs(rng, c, P);
                const auto got = moe::cuda::causal_attention(
                    in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0, c.device_pos, maths[mi],
                    moe::cuda::DecodeAttention::scalar, moe::cuda::KvType::f32, kernels[mi]);
                for (const float x : got) QVERIFY(std::isfinite(x));  // the output is poisoned with NaN first
                const double worst = worst_error(in, c, got);
                // Decode, and heads the tensor-core kernel does not take, stay f32 whatever is asked.
                const bool on_tensor_cores = c.T > 1 && !c.device_pos && (c.hd == 64 || c.hd == 128);
                const double tol = tolerance[on_tensor_cores ? mi : 0];
                qInfo("%s: T=%lld pos0=%lld heads %lld/%lld×%lld: max |Δ| %.3g (tolerance %.0e)", math_name[mi],
                      (long long)c.T, (long long)c.pos0, (long long)c.nh, (long long)c.nkv, (long long)c.hd, worst,
                      tol);
                QVERIFY(worst < tol);
            }
    }

    // Both decode kernels (DecodeAttention) against the definition, within the f32 tolerance:
    // every head width the vector kernel takes (4 to 128) and two it leaves to the scalar one
    // (96, 192), grouped KV heads, the first position, splits of one position and of 64, the
    // host's and the device's position (room for 300 more positions beyond it).
    void decodeKernelsMatchTheDefinition() {
        test_support::Lcg rng{11};
        using moe::cuda::DecodeAttention;
        for (const DecodeAttention kernel :
             {DecodeAttention::scalar, DecodeAttention::vector, DecodeAttention::warp, DecodeAttention::merged})
            for (const Case c :
                 {Case{1, 2047, 16, 16, 128, false}, Case{1, 4095, 16, 16, 128, true}, Case{1, 0, 4, 2, 32, false},
                  Case{1, 700, 8, 2, 64, true}, Case{1, 63, 8, 2, 64, false}, Case{1, 333, 4, 4, 16, false},
                  Case{1, 65, 2, 1, 8, false}, Case{1, 9, 2, 2, 4, true}, Case{1, 100, 6, 3, 96, false},
                  Case{1, 50, 2, 1, 192, true}}) {
                const int64_t P = c.pos0 + c.T + (c.device_pos ? 300 : 0);
                const Inputs in = inputs(rng, c, P);
                const auto got = moe::cuda::causal_attention(in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0,
                                                             c.device_pos, moe::cuda::AttentionMath::f32, kernel);
                for (const float x : got) QVERIFY(std::isfinite(x));
                const double worst = worst_error(in, c, got);
                qInfo("%s decode: pos0=%lld%s heads %lld/%lld×%lld: max |Δ| %.3g (tolerance 1e-5)",
                      kernel == DecodeAttention::vector   ? "vector"
                      : kernel == DecodeAttention::warp   ? "warp"
                      : kernel == DecodeAttention::merged ? "merged"
                                                          : "scalar",
                      (long long)c.pos0, c.device_pos ? " (device)" : "", (long long)c.nh, (long long)c.nkv,
                      (long long)c.hd, worst);
                QVERIFY(worst < 1e-5);
            }
    }

    // The warp-a-split decode kernel (split_item_warp, the stream kernel's attention) computes
    // the scalar split's values bit for bit: each score's sum, the softmax's tree and each output
    // dimension's sum in the same order — heads of 4 to 128 (and 12, 10: not powers of two),
    // grouped KV heads, splits of 1 to 64 positions, the host's and the device's position. So
    // does the scalar split merged by each head's last block (DecodeAttention::merged), each
    // case launched twice on the same buffers (causal_attention: its counters set back).
    void warpSplitIsTheScalarSplit() {
        using moe::cuda::DecodeAttention;
        sameAsScalar(DecodeAttention::warp, "warp split");
    }
    void mergedSplitIsTheScalarSplit() {
        using moe::cuda::DecodeAttention;
        sameAsScalar(DecodeAttention::merged, "merged split");
    }

private:
    void sameAsScalar(moe::cuda::DecodeAttention kernel, const char* name) {
        test_support::Lcg rng{23};
        using moe::cuda::DecodeAttention;
        for (const Case c :
             {Case{1, 2047, 16, 16, 128, false}, Case{1, 4000, 16, 16, 128, false}, Case{1, 0, 4, 2, 32, false},
              Case{1, 700, 8, 2, 64, true}, Case{1, 63, 8, 2, 64, false}, Case{1, 333, 4, 4, 16, false},
              Case{1, 65, 2, 1, 8, false}, Case{1, 9, 2, 2, 4, true}, Case{1, 100, 6, 3, 96, false},
              Case{1, 1500, 4, 2, 12, false}, Case{1, 31, 4, 2, 10, true}}) {
            const int64_t P = c.pos0 + c.T + (c.device_pos ? 300 : 0);
            const Inputs in = inputs(rng, c, P);
            const auto scalar =
                moe::cuda::causal_attention(in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0, c.device_pos,
                                            moe::cuda::AttentionMath::f32, DecodeAttention::scalar);
            const auto other = moe::cuda::causal_attention(in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0,
                                                           c.device_pos, moe::cuda::AttentionMath::f32, kernel);
            QCOMPARE(other.size(), scalar.size());
            for (size_t i = 0; i < scalar.size(); ++i)
                if (std::memcmp(&other[i], &scalar[i], sizeof(float)) != 0)
                    QFAIL(
                        qPrintable(QString("pos0 %1 heads %2/%3x%4: output %5 is %6 by the %7, %8 by the scalar split")
                                       .arg(c.pos0)
                                       .arg(c.nh)
                                       .arg(c.nkv)
                                       .arg(c.hd)
                                       .arg(i)
                                       .arg(static_cast<double>(other[i]), 0, 'g', 9)
                                       .arg(name)
                                       .arg(static_cast<double>(scalar[i]), 0, 'g', 9)));
        }
    }

private slots:

    // A BF16 KV cache (KvType::bf16) through every kernel: the tiled prefill, the tensor-core
    // prefill with split and with BF16 operands, the wide-head path, and both decode kernels at
    // the host's and the device's position, against the definition on the keys and values
    // rounded to BF16 as the cache holds them — the tolerances of the f32 cache.
    void bf16KeysAndValuesMatchTheDefinition() {
        test_support::Lcg rng{17};
        using moe::cuda::AttentionMath;
        using moe::cuda::DecodeAttention;
        using moe::cuda::PrefillAttention;
        struct Run {
            Case c;
            AttentionMath math;
            DecodeAttention decode;
            double tol;
            PrefillAttention prefill = PrefillAttention::tiles;
        };
        const Run runs[] = {
            {Case{130, 5, 4, 2, 128, false}, AttentionMath::f32, DecodeAttention::scalar, 1e-5},
            {Case{100, 37, 6, 3, 96, false}, AttentionMath::f32, DecodeAttention::scalar, 1e-5},
            {Case{130, 5, 4, 2, 128, false}, AttentionMath::split_bf16, DecodeAttention::scalar, 5e-5},
            {Case{70, 0, 2, 2, 64, false}, AttentionMath::split_bf16, DecodeAttention::scalar, 5e-5},
            {Case{130, 5, 4, 2, 128, false}, AttentionMath::bf16, DecodeAttention::scalar, 2e-2},
            {Case{130, 5, 4, 2, 128, false}, AttentionMath::split_bf16, DecodeAttention::scalar, 5e-5,
             PrefillAttention::pipelined},
            {Case{512, 0, 16, 16, 128, false}, AttentionMath::split_bf16, DecodeAttention::scalar, 5e-5,
             PrefillAttention::pipelined},
            {Case{70, 0, 2, 2, 64, false}, AttentionMath::split_bf16, DecodeAttention::scalar, 5e-5,
             PrefillAttention::pipelined},
            {Case{130, 5, 4, 2, 128, false}, AttentionMath::bf16, DecodeAttention::scalar, 2e-2,
             PrefillAttention::pipelined},
            {Case{3, 10, 2, 1, 192, false}, AttentionMath::f32, DecodeAttention::scalar, 1e-5},
            {Case{1, 2047, 16, 16, 128, false}, AttentionMath::f32, DecodeAttention::scalar, 1e-5},
            {Case{1, 700, 8, 2, 64, true}, AttentionMath::f32, DecodeAttention::scalar, 1e-5},
            {Case{1, 2047, 16, 16, 128, false}, AttentionMath::f32, DecodeAttention::vector, 1e-5},
            {Case{1, 4095, 16, 16, 128, true}, AttentionMath::f32, DecodeAttention::vector, 1e-5},
            {Case{1, 333, 4, 4, 16, false}, AttentionMath::f32, DecodeAttention::vector, 1e-5},
            {Case{1, 2047, 16, 16, 128, false}, AttentionMath::f32, DecodeAttention::merged, 1e-5},
            {Case{1, 700, 8, 2, 64, true}, AttentionMath::f32, DecodeAttention::merged, 1e-5},
        };
        for (const Run& run : runs) {
            const Case& c = run.c;
            const int64_t P = c.pos0 + c.T + (c.device_pos ? 300 : 0);
            Inputs in = inputs(rng, c, P);
            const auto got =
                moe::cuda::causal_attention(in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0, c.device_pos, run.math,
                                            run.decode, moe::cuda::KvType::bf16, run.prefill);
            for (const float x : got) QVERIFY(std::isfinite(x));
            for (auto* kv : {&in.k, &in.v})
                for (float& x : *kv) x = moe::bf16_to_f32(moe::f32_to_bf16(x));
            const double worst = worst_error(in, c, got);
            qInfo("BF16 cache: T=%lld pos0=%lld%s heads %lld/%lld×%lld: max |Δ| %.3g (tolerance %.0e)", (long long)c.T,
                  (long long)c.pos0, c.device_pos ? " (device)" : "", (long long)c.nh, (long long)c.nkv, (long long)c.hd, worst,
                  run.tol);
            QVERIFY(worst < run.tol);
        }
    }

    // The pipelined kernel with 32 query rows a warp (PrefillAttention::pipelined_wide,
    // MOEWB_CUDA_ATTENTION=wide) computes each row's sums as the one with 16 does, in the same
    // order, and skips only key tiles none of a row tile's queries sees: the same outputs, value
    // for value, for both maths and caches, heads of 64 and 128, partial and single query
    // tiles, an offset start and grouped KV heads.
    void wideRowsMatchPipelined() {
        test_support::Lcg rng{23};
        using moe::cuda::AttentionMath;
        using moe::cuda::KvType;
        using moe::cuda::PrefillAttention;
        int64_t compared = 0;
        for (const AttentionMath math : {AttentionMath::split_bf16, AttentionMath::bf16})
            for (const KvType kv : {KvType::f32, KvType::bf16})
                for (const Case c :
                     {Case{512, 0, 16, 16, 128, false}, Case{130, 5, 4, 2, 128, false}, Case{129, 0, 2, 2, 128, false},
                      Case{70, 0, 2, 2, 64, false}, Case{200, 37, 8, 2, 64, false}, Case{2, 3, 2, 2, 64, false},
                      Case{300, 1000, 4, 4, 128, false}, Case{64, 0, 2, 1, 128, false}}) {
                    const int64_t P = c.pos0 + c.T;
                    const Inputs in = inputs(rng, c, P);
                    auto run = [&](PrefillAttention prefill) {
                        return moe::cuda::causal_attention(in.q, in.k, in.v, c.T, P, c.nh, c.nkv, c.hd, c.pos0, false,
                                                           math, moe::cuda::DecodeAttention::scalar, kv, prefill);
                    };
                    const auto narrow = run(PrefillAttention::pipelined), wide = run(PrefillAttention::pipelined_wide);
                    QCOMPARE(wide.size(), narrow.size());
                    for (size_t i = 0; i < wide.size(); ++i) {
                        QVERIFY(std::isfinite(wide[i]));  // the output is poisoned with NaN first
                        if (wide[i] != narrow[i])
                            QFAIL(qPrintable(
                                QString("T=%1 pos0=%2 heads %3/%4×%5: output %6 is %7 with 32 rows a warp, %8 "
                                        "with 16")
                                    .arg(c.T)
                                    .arg(c.pos0)
                                    .arg(c.nh)
                                    .arg(c.nkv)
                                    .arg(c.hd)
                                    .arg(i)
                                    .arg(double(wide[i]), 0, 'g', 9)
                                    .arg(double(narrow[i]), 0, 'g', 9)));
                    }
                    compared += static_cast<int64_t>(wide.size());
                }
        qInfo("32 query rows a warp: %lld outputs equal to the pipelined kernel's", static_cast<long long>(compared));
    }
};

QTEST_APPLESS_MAIN(CudaAttentionTest)
#include "test_cuda_attention.moc"
