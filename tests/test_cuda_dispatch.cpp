// CPU vs CUDA parity of the MoE dispatch (engine/cuda/dispatch_kernels.h against
// engine/moe_dispatch.h and the CPU backend's loops): expert offsets, stable rows with dropped
// slots and their inverse must be identical; the gather is a copy and the combine sums the
// same terms in the same order, so both are compared for exact equality; so are the padded
// layout of batched products and the gathers that round as they copy (round_split's parts,
// bit for bit), and the stacked layout of split activations (the same parts at other rows, a
// combine of two rows' sums). Labelled gpu;
// without a CUDA device it is skipped with the driver's reason.
#include <QtTest>

#include <vector>

#include "engine/cuda/device.h"
#include "engine/cuda/dispatch_kernels.h"
#include "engine/expert_streams.h"
#include "engine/moe_dispatch.h"
#include "engine/tensor.h"
#include "tests/cuda_test_support.h"
#include "tests/test_support.h"

namespace {

// parts are round_split's of f32 values v: hi their rounding to BF16 (nearest even), lo the
// rounding of what hi left out (when split), bit for bit.
void check_rounded(const moe::cuda::Bf16Parts& parts, const std::vector<float>& v, bool split) {
    QCOMPARE(parts.hi.size(), v.size());
    QCOMPARE(parts.lo.size(), split ? v.size() : size_t(0));
    for (size_t i = 0; i < v.size(); ++i) {
        QCOMPARE(parts.hi[i], moe::f32_to_bf16(v[i]));
        if (split) QCOMPARE(parts.lo[i], moe::f32_to_bf16(v[i] - moe::bf16_to_f32(parts.hi[i])));
    }
}

}  // namespace

class CudaDispatchTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
    }

    void dispatchMatchesTheCpu() {
        test_support::Lcg rng{2026};
        // The 16B's router (64 experts, top-6), V3's (256, top-8), prefill and decode sizes.
        const int64_t shapes[][3] = {{64, 6, 2048}, {64, 6, 1}, {256, 8, 1000}, {160, 6, 777}};
        for (const auto& [E, k, T] : shapes)
            for (bool drop : {false, true}) {
                std::vector<int32_t> experts(static_cast<size_t>(T * k));
                for (auto& e : experts) e = static_cast<int32_t>(rng.next(static_cast<uint32_t>(E)));
                std::vector<uint8_t> dropped;
                if (drop) {
                    dropped.assign(static_cast<size_t>(E), 0);
                    for (auto& x : dropped) x = rng.next(4) == 0;
                }
                const moe::cuda::DispatchResult gpu = moe::cuda::dispatch_slots(experts, E, dropped);
                std::vector<int64_t> offsets(static_cast<size_t>(E + 1)), cursor(static_cast<size_t>(E)),
                    rows(experts.size());
                const uint8_t* dr = drop ? dropped.data() : nullptr;
                moe::dispatch::expert_offsets(experts.data(), T * k, dr, E, offsets.data());
                moe::dispatch::slot_rows(experts.data(), T * k, dr, offsets.data(), E, cursor.data(), rows.data());
                std::vector<int64_t> row_slot(static_cast<size_t>(offsets.back()));
                moe::dispatch::row_slots(rows.data(), T * k, row_slot.data());
                QCOMPARE(gpu.offsets, offsets);
                QCOMPARE(gpu.rows, rows);
                QCOMPARE(gpu.row_slot, row_slot);

                // Gather and combine on rows of width H.
                const int64_t H = 96;
                std::vector<float> x(static_cast<size_t>(T * H)), w(static_cast<size_t>(T * k)), base(x.size());
                for (auto& v : x) v = static_cast<float>(rng.next(2001)) / 1000.0f - 1.0f;
                for (auto& v : w) v = static_cast<float>(rng.next(1001)) / 1000.0f;
                for (auto& v : base) v = static_cast<float>(rng.next(2001)) / 1000.0f - 1.0f;
                const std::vector<float> gathered = moe::cuda::gather_rows(x, H, k, row_slot);
                QCOMPARE(gathered.size(), row_slot.size() * size_t(H));
                for (size_t r = 0; r < row_slot.size(); ++r)
                    for (int64_t i = 0; i < H; ++i)
                        QCOMPARE(gathered[r * size_t(H) + size_t(i)], x[size_t(row_slot[r] / k * H + i)]);
                // The padded layout of batched products: the same rows between rows of zeros,
                // the slots' rows moved with them.
                for (const int64_t pad : {int64_t(64), int64_t(7)}) {
                    const moe::dispatch::BatchPlan plan = moe::dispatch::plan_batches(offsets.data(), E, pad);
                    const std::vector<float> padded_x =
                        moe::cuda::gather_padded(x, H, k, row_slot, offsets, plan.padded);
                    QCOMPARE(padded_x.size(), size_t(plan.padded.back() * H));
                    for (int64_t p = 0; p < plan.padded.back(); ++p) {
                        const int64_t row = moe::dispatch::row_of_padded(offsets.data(), plan.padded.data(), E, p);
                        for (int64_t i = 0; i < H; ++i)
                            QCOMPARE(padded_x[size_t(p * H + i)], row < 0 ? 0.0f : gathered[size_t(row * H + i)]);
                    }
                    const std::vector<int64_t> padded_rows = moe::cuda::pad_rows(experts, offsets, plan.padded, rows);
                    for (size_t sl = 0; sl < rows.size(); ++sl)
                        QCOMPARE(padded_rows[sl], rows[sl] < 0
                                                      ? int64_t(-1)
                                                      : moe::dispatch::padded_row(offsets.data(), plan.padded.data(),
                                                                                  experts[sl], rows[sl]));
                    // Rounded in the gather: round_split's parts of the same rows.
                    const moe::cuda::Bf16Parts parts =
                        moe::cuda::gather_rounded_bf16(x, H, k, row_slot, offsets, plan.padded, true);
                    check_rounded(parts, padded_x, true);
                    // The combine over the padded rows sums what it sums over the gathered ones.
                    QCOMPARE(moe::cuda::combine_rows(padded_x, H, T, k, padded_rows, w, base),
                             moe::cuda::combine_rows(gathered, H, T, k, rows, w, base));
                    // The stacked layout: each slot's rows of its two parts, the same parts at them,
                    // and a combine of two rows' sums as the combine of the sums.
                    const moe::cuda::StackedRows st = moe::cuda::pad_rows_stacked(experts, offsets, plan.padded, rows);
                    const std::vector<uint16_t> stacked =
                        moe::cuda::gather_stacked_bf16(x, H, k, row_slot, offsets, plan.padded);
                    QCOMPARE(stacked.size(), size_t(2 * plan.padded.back() * H));
                    const int64_t n_pad = plan.padded.back();
                    std::vector<float> two(size_t(2 * n_pad * H)), sums(size_t(n_pad * H));
                    for (auto& v : two) v = static_cast<float>(rng.next(2001)) / 1000.0f - 1.0f;
                    for (int64_t p = 0; p < n_pad; ++p) {
                        const int64_t e = moe::dispatch::segment_of(plan.padded.data(), E, p);
                        const int64_t rh = moe::dispatch::stacked_hi(plan.padded.data(), e, p);
                        const int64_t rl = moe::dispatch::stacked_lo(plan.padded.data(), e, p);
                        for (int64_t i = 0; i < H; ++i) {
                            QCOMPARE(stacked[size_t(rh * H + i)], parts.hi[size_t(p * H + i)]);
                            QCOMPARE(stacked[size_t(rl * H + i)], parts.lo[size_t(p * H + i)]);
                            sums[size_t(p * H + i)] = two[size_t(rh * H + i)] + two[size_t(rl * H + i)];
                        }
                    }
                    for (size_t sl = 0; sl < rows.size(); ++sl) {
                        if (rows[sl] < 0) {
                            QCOMPARE(st.hi[sl], int64_t(-1));
                            QCOMPARE(st.lo[sl], int64_t(-1));
                            continue;
                        }
                        const int64_t e = experts[sl];
                        QCOMPARE(st.hi[sl], moe::dispatch::stacked_hi(plan.padded.data(), e, padded_rows[sl]));
                        QCOMPARE(st.lo[sl], moe::dispatch::stacked_lo(plan.padded.data(), e, padded_rows[sl]));
                    }
                    QCOMPARE(moe::cuda::combine_rows(two, H, T, k, st.hi, w, base, st.lo),
                             moe::cuda::combine_rows(sums, H, T, k, padded_rows, w, base));
                }
                for (const bool split : {false, true})
                    check_rounded(moe::cuda::gather_rounded_bf16(x, H, k, row_slot, offsets, {}, split), gathered,
                                  split);
                const std::vector<float> out = moe::cuda::combine_rows(gathered, H, T, k, rows, w, base);
                for (int64_t t = 0; t < T; ++t)
                    for (int64_t i = 0; i < H; ++i) {
                        float acc = base[size_t(t * H + i)];
                        for (int64_t r = 0; r < k; ++r)
                            if (const int64_t row = rows[size_t(t * k + r)]; row >= 0)
                                acc += w[size_t(t * k + r)] * gathered[size_t(row * H + i)];
                        QCOMPARE(out[size_t(t * H + i)], acc);
                    }
            }
    }
};

QTEST_APPLESS_MAIN(CudaDispatchTest)
#include "test_cuda_dispatch.moc"
