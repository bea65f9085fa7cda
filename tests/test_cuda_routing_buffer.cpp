// The CUDA backend's routing observer buffer (engine/cuda/routing_buffer.h): two MoE layers'
// routing recorded from device memory during a step (one with k below the buffer's k_max, one
// without gate weights), one copy to the host, and the RoutingBatch each layer is handed to
// the observer carries exactly the recorded values, positions and kinds; routing the router
// wrote in place (slot()) is delivered as written. Labelled gpu; without
// a CUDA device it is skipped with the driver's reason.
#include <QtTest>

#include <vector>

#include "engine/cuda/device.h"
#include "engine/error.h"
#include "engine/cuda/routing_buffer.h"
#include "tests/cuda_test_support.h"

namespace {
struct Collect : moe::RoutingObserver {
    struct Seen {
        moe::RoutingBatch b;
        std::vector<int32_t> experts;
        std::vector<float> weights, entropy;
    };
    std::vector<Seen> seen;
    void on_routing(const moe::RoutingBatch& b) override {
        Seen s{b, std::vector<int32_t>(b.experts, b.experts + b.n_tokens * b.k), {}, {}};
        if (b.gate_weights) s.weights.assign(b.gate_weights, b.gate_weights + b.n_tokens * b.k);
        if (b.entropy) s.entropy.assign(b.entropy, b.entropy + b.n_tokens);
        seen.push_back(std::move(s));
    }
};

template <typename T>
void* on_device(const std::vector<T>& v) {
    void* p = moe::cuda::device_alloc(v.size() * sizeof(T));
    moe::cuda::copy_to_device(p, v.data(), v.size() * sizeof(T));
    return p;
}
}  // namespace

class CudaRoutingBufferTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { MOE_SKIP_WITHOUT_GPU(); }

    void oneCopyPerStepDeliversEveryLayer() {
        moe::cuda::RoutingBuffer buf({1, 2, 3}, 16, 8);
        const int64_t T = 5;
        std::vector<int32_t> e1, e2;
        std::vector<float> w1, h1;
        for (int64_t t = 0; t < T; ++t) {
            for (int r = 0; r < 6; ++r) {
                e1.push_back(int32_t(t * 10 + r));
                w1.push_back(0.1f * float(r + 1) + float(t));
            }
            for (int r = 0; r < 8; ++r) e2.push_back(int32_t(100 + t * 8 + r));
            h1.push_back(1.5f + float(t));
        }
        void *d_e1 = on_device(e1), *d_w1 = on_device(w1), *d_h1 = on_device(h1), *d_e2 = on_device(e2);
        buf.begin(40, T, moe::TokenSource::generated);
        buf.record(1, 6, static_cast<int32_t*>(d_e1), static_cast<float*>(d_w1), static_cast<float*>(d_h1), nullptr,
                   nullptr, moe::GateWeightKind::router_prob, false, 1.0f, nullptr);
        buf.record(3, 8, static_cast<int32_t*>(d_e2), nullptr, nullptr, nullptr, nullptr,
                   moe::GateWeightKind::renormalized, true, 2.5f, nullptr);
        buf.flush(nullptr);
        Collect c;
        buf.deliver(c);
        QCOMPARE(c.seen.size(), size_t(2));  // layer 2 was not recorded this step
        QCOMPARE(c.seen[0].b.layer, int64_t(1));
        QCOMPARE(c.seen[0].b.pos0, int64_t(40));
        QCOMPARE(c.seen[0].b.n_tokens, T);
        QCOMPARE(c.seen[0].b.k, int64_t(6));
        QVERIFY(c.seen[0].b.source == moe::TokenSource::generated);
        QCOMPARE(c.seen[0].experts, e1);
        QCOMPARE(c.seen[0].weights, w1);
        QCOMPARE(c.seen[0].entropy, h1);
        QCOMPARE(c.seen[1].b.layer, int64_t(3));
        QCOMPARE(c.seen[1].experts, e2);
        QVERIFY(c.seen[1].weights.empty() && c.seen[1].entropy.empty());
        QVERIFY(c.seen[1].b.shared_off);
        QCOMPARE(c.seen[1].b.weight_scale, 2.5f);
        QVERIFY(c.seen[1].b.weight_kind == moe::GateWeightKind::renormalized);
        QVERIFY_THROWS_EXCEPTION(moe::Error, buf.begin(0, 17, moe::TokenSource::prompt));  // more than its room
        for (void* p : {d_e1, d_w1, d_h1, d_e2}) moe::cuda::device_free(p);
    }

    void routingWrittenInPlaceIsDeliveredWithoutACopy() {
        // The router writes into the layer's slot; record() is given those pointers and the
        // delivery carries what was written there.
        moe::cuda::RoutingBuffer buf({4}, 8, 6);
        const int64_t T = 3, k = 6;
        std::vector<int32_t> e(T * k);
        std::vector<float> w(T * k), h(T);
        for (int64_t i = 0; i < T * k; ++i) {
            e[size_t(i)] = int32_t(60 - i);
            w[size_t(i)] = 0.25f * float(i);
        }
        for (int64_t t = 0; t < T; ++t) h[size_t(t)] = 2.0f - float(t);
        buf.begin(7, T, moe::TokenSource::prompt);
        const auto sl = buf.slot(4);
        moe::cuda::copy_to_device(sl.experts, e.data(), e.size() * sizeof(int32_t));
        moe::cuda::copy_to_device(sl.weights, w.data(), w.size() * sizeof(float));
        moe::cuda::copy_to_device(sl.entropy, h.data(), h.size() * sizeof(float));
        buf.record(4, k, sl.experts, sl.weights, sl.entropy, nullptr, nullptr, moe::GateWeightKind::router_prob, false,
                   1.0f, nullptr);
        buf.flush(nullptr);
        Collect c;
        buf.deliver(c);
        QCOMPARE(c.seen.size(), size_t(1));
        QCOMPARE(c.seen[0].experts, e);
        QCOMPARE(c.seen[0].weights, w);
        QCOMPARE(c.seen[0].entropy, h);
        QVERIFY_THROWS_EXCEPTION(moe::Error, buf.slot(5));  // not a MoE layer of the buffer
    }
};

QTEST_APPLESS_MAIN(CudaRoutingBufferTest)
#include "test_cuda_routing_buffer.moc"
