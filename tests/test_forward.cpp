// Forward-pass properties of the CPU engine on the fixture checkpoints: KV-cache decode
// equals the full-sequence prefill, chunked prefill too; results do not depend on the
// thread count or on an attached observer; reroute and drop follow their definitions
// (checked against the model's own full expert ranking, obtained with k = E); shared
// experts off changes the logits.
#include <QtTest>

#include <algorithm>
#include <cstring>

#include "engine/cpu/matmul.h"

#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/model_config.h"
#include "engine/random_weights.h"
#include "tests/test_support.h"

namespace {

std::string fixture_dir(const char* name) { return test_support::fixture_path(name); }

std::unique_ptr<moe::Model> load(const char* name, int threads = 2) {
    moe::LoadOptions lo;
    lo.threads = threads;
    return moe::load_model(fixture_dir(name), lo);
}

std::vector<int32_t> test_ids(const moe::Model& m, int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 11) % m.config().vocab_size));
    return ids;
}

struct Run {
    std::vector<float> logits;
    moe::RoutingRecorder rec;
};

Run prefill(const moe::Model& m, const std::vector<int32_t>& ids, const moe::ExpertMask* mask = nullptr) {
    Run r;
    moe::Session s(m);
    moe::ForwardOptions o;
    o.mask = mask;
    o.observer = &r.rec;
    s.forward(ids, o, r.logits);
    return r;
}

double max_diff(const float* a, const float* b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
}

}  // namespace

class ForwardTest : public QObject {
    Q_OBJECT
private slots:
    void decode_equals_prefill_data() {
        QTest::addColumn<QString>("fixture");
        QTest::addColumn<QString>("mask");
        for (const char* f : {"f32_single", "f32_sharded_gqa", "bf16_tied", "f32_rope_linear", "f32_dense2_4layers"}) {
            QTest::newRow(f) << f << "";
            QTest::newRow((std::string(f) + " masked").c_str()) << f << "*:skip-top=1;*:1";
        }
    }
    void decode_equals_prefill() {
        QFETCH(QString, fixture);
        QFETCH(QString, mask);
        auto m = load(fixture.toStdString().c_str());
        const auto spec = moe::ExpertMask::parse(mask.toStdString(), m->config(), moe::MaskMode::reroute);
        const auto ids = test_ids(*m, 14);
        const Run full = prefill(*m, ids, &spec);
        const int64_t V = m->config().vocab_size;

        moe::Session s(*m);
        moe::RoutingRecorder rec;
        moe::ForwardOptions o;
        o.mask = &spec;
        o.observer = &rec;
        std::vector<float> logits;
        const size_t n_prompt = 5;
        s.forward(std::span(ids).first(n_prompt), o, logits);
        QVERIFY(max_diff(logits.data(), full.logits.data(), n_prompt * V) <= 1e-5);
        o.all_logits = false;
        o.source = moe::TokenSource::generated;
        for (size_t t = n_prompt; t < ids.size(); ++t) {
            s.forward(std::span(ids).subspan(t, 1), o, logits);
            QCOMPARE(static_cast<int64_t>(logits.size()), V);
            QVERIFY2(max_diff(logits.data(), full.logits.data() + t * V, V) <= 1e-5, qPrintable(QString::number(t)));
        }
        QCOMPARE(s.position(), static_cast<int64_t>(ids.size()));
        for (const auto& [layer, toks] : full.rec.layers()) {
            const auto& dec = rec.layers().at(layer);
            QCOMPARE(dec.size(), toks.size());
            for (size_t t = 0; t < toks.size(); ++t) {
                QCOMPARE(dec[t].experts, toks[t].experts);
                QCOMPARE(dec[t].pos, static_cast<int64_t>(t));
                QCOMPARE(dec[t].source, t < n_prompt ? moe::TokenSource::prompt : moe::TokenSource::generated);
            }
        }
    }
    void thread_count_and_observer_do_not_change_results() {
        auto m1 = load("f32_sharded_gqa", 1);
        auto m2 = load("f32_sharded_gqa", 2);
        const auto ids = test_ids(*m1, 19);
        const Run a = prefill(*m1, ids);
        const Run b = prefill(*m2, ids);
        QVERIFY(a.logits == b.logits);  // bit-identical: each output has one summation order
        moe::Session s(*m2);
        std::vector<float> plain;
        s.forward(ids, moe::ForwardOptions{}, plain);
        QVERIFY(plain == b.logits);
    }
    void reroute_and_drop_follow_their_definitions() {
        auto m = load("f32_single");
        const auto& c = m->config();
        const int64_t layer = 1, K = c.num_experts_per_tok, E = c.n_routed_experts;
        const auto ids = test_ids(*m, 9);
        const Run base = prefill(*m, ids);
        // Victim: the rank-0 expert of position 4 in the layer.
        const int32_t victim = base.rec.layers().at(layer)[4].experts[0];
        const std::string off = "L" + std::to_string(layer) + ":" + std::to_string(victim);

        // The full ranking of every token in the layer: k = E with the same upstream layers.
        // (Layer 1 is the first MoE layer, so its inputs do not depend on the mask.)
        const auto dense = moe::ExpertMask::parse("L1:k=" + std::to_string(E), c, moe::MaskMode::reroute);
        const Run ranking = prefill(*m, ids, &dense);

        const auto rr = moe::ExpertMask::parse(off, c, moe::MaskMode::reroute);
        const Run rerouted = prefill(*m, ids, &rr);
        const auto dr = moe::ExpertMask::parse(off, c, moe::MaskMode::drop);
        const Run dropped = prefill(*m, ids, &dr);
        bool any_changed = false;
        for (size_t t = 0; t < ids.size(); ++t) {
            std::vector<int32_t> expected;
            for (int32_t e : ranking.rec.layers().at(layer)[t].experts)
                if (e != victim && static_cast<int64_t>(expected.size()) < K) expected.push_back(e);
            const auto& got = rerouted.rec.layers().at(layer)[t];
            QCOMPARE(got.experts, expected);
            // Reroute keeps the router's probabilities as weights.
            const auto& full = ranking.rec.layers().at(layer)[t];
            for (size_t r = 0; r < expected.size(); ++r) {
                const auto pos = std::find(full.experts.begin(), full.experts.end(), expected[r]) - full.experts.begin();
                QCOMPARE(got.gate_weights[r], full.gate_weights[static_cast<size_t>(pos)]);
            }
            // Drop selects exactly as the baseline, with the same weights.
            QCOMPARE(dropped.rec.layers().at(layer)[t].experts, base.rec.layers().at(layer)[t].experts);
            QCOMPARE(dropped.rec.layers().at(layer)[t].gate_weights, base.rec.layers().at(layer)[t].gate_weights);
            any_changed |= base.rec.layers().at(layer)[t].experts != got.experts;
        }
        QVERIFY(any_changed);
        QVERIFY(max_diff(dropped.logits.data(), base.logits.data(), base.logits.size()) > 1e-4);
        QVERIFY(max_diff(rerouted.logits.data(), dropped.logits.data(), base.logits.size()) > 1e-4);
    }
    void disabling_unselected_experts_changes_nothing() {
        auto m = load("f32_single");
        const auto& c = m->config();
        const auto ids = test_ids(*m, 9);
        const Run base = prefill(*m, ids);
        std::vector<bool> used(static_cast<size_t>(c.n_routed_experts), false);
        for (const auto& tok : base.rec.layers().at(1))
            for (int32_t e : tok.experts) used[static_cast<size_t>(e)] = true;
        std::string list;
        for (int64_t e = 0; e < c.n_routed_experts; ++e)
            if (!used[static_cast<size_t>(e)]) list += (list.empty() ? "" : ",") + std::to_string(e);
        if (list.empty()) QSKIP("every expert of layer 1 is used by this sequence");
        for (auto mode : {moe::MaskMode::reroute, moe::MaskMode::drop}) {
            const auto mask = moe::ExpertMask::parse("L1:" + list, c, mode);
            const Run r = prefill(*m, ids, &mask);
            QVERIFY(r.logits == base.logits);
        }
    }
    void drop_everything_equals_zero_ffn() {
        // Drop all routed experts and the shared ones in every MoE layer: the MoE blocks add
        // nothing, so the logits equal a model whose MoE layers' down projections are zero.
        auto m = load("f32_single");
        const auto& c = m->config();
        std::string all;
        for (int64_t e = 0; e < c.n_routed_experts; ++e) all += (e ? "," : "") + std::to_string(e);
        const auto mask = moe::ExpertMask::parse("*:" + all + ";*:shared", c, moe::MaskMode::drop);
        const auto ids = test_ids(*m, 7);
        const Run dropped = prefill(*m, ids, &mask);

        auto zeroed = std::make_shared<moe::MemoryTensors>();
        for (const auto& name : m->tensors().names()) {
            const moe::TensorView* t = m->tensors().find(name);
            std::vector<uint8_t> bytes(static_cast<const uint8_t*>(t->data), static_cast<const uint8_t*>(t->data) + t->nbytes);
            if (name.find("down_proj") != std::string::npos && name.find(".mlp.experts.") != std::string::npos) std::fill(bytes.begin(), bytes.end(), 0);
            if (name.find("down_proj") != std::string::npos && name.find(".mlp.shared_experts.") != std::string::npos) std::fill(bytes.begin(), bytes.end(), 0);
            zeroed->add(name, t->dtype, t->shape, std::move(bytes));
        }
        moe::LoadOptions lo;
        lo.threads = 2;
        auto mz = moe::make_model(c, zeroed, lo);
        const Run z = prefill(*mz, ids);
        QVERIFY(max_diff(dropped.logits.data(), z.logits.data(), z.logits.size()) <= 1e-6);
    }
    void half_precision_weights_widen_exactly_data() {
        QTest::addColumn<int>("dtype");
        QTest::newRow("bf16") << static_cast<int>(moe::DType::bf16);
        QTest::newRow("f16") << static_cast<int>(moe::DType::f16);
    }
    void half_precision_weights_widen_exactly() {
        // A model stored in BF16/F16 must give exactly the logits of the same (rounded)
        // weights stored as F32: widening is exact and accumulation is f32 either way.
        QFETCH(int, dtype);
        const auto dt = static_cast<moe::DType>(dtype);
        auto m = load("f32_single");
        auto half = std::make_shared<moe::MemoryTensors>();
        auto widened = std::make_shared<moe::MemoryTensors>();
        for (const auto& name : m->tensors().names()) {
            const moe::TensorView* t = m->tensors().find(name);
            const auto* f = static_cast<const float*>(t->data);
            const int64_t n = t->numel();
            std::vector<uint8_t> hb(static_cast<size_t>(n) * 2), fb(static_cast<size_t>(n) * 4);
            for (int64_t i = 0; i < n; ++i) {
                const uint16_t h = dt == moe::DType::bf16 ? moe::f32_to_bf16(f[i]) : moe::f32_to_f16(f[i]);
                const float back = dt == moe::DType::bf16 ? moe::bf16_to_f32(h) : moe::f16_to_f32(h);
                std::memcpy(hb.data() + 2 * i, &h, 2);
                std::memcpy(fb.data() + 4 * i, &back, 4);
            }
            half->add(name, dt, t->shape, std::move(hb));
            widened->add(name, moe::DType::f32, t->shape, std::move(fb));
        }
        moe::LoadOptions lo;
        lo.threads = 2;
        auto mh = moe::make_model(m->config(), half, lo);
        auto mf = moe::make_model(m->config(), widened, lo);
        const auto ids = test_ids(*m, 11);
        const Run a = prefill(*mh, ids), b = prefill(*mf, ids);
        QVERIFY(a.logits == b.logits);
        const auto [lo_it, hi_it] = std::minmax_element(a.logits.begin(), a.logits.end());
        QVERIFY(*hi_it - *lo_it > 1.0f);  // a real spread of logits, not a degenerate model
    }
    void generic_kernels_match_vector_kernels() {
        auto m = load("f32_dense2_4layers");
        const auto ids = test_ids(*m, 13);
        const Run fast = prefill(*m, ids);
        moe::cpu::force_generic_kernels(true);
        const Run plain = prefill(*m, ids);
        moe::cpu::force_generic_kernels(false);
        QVERIFY(max_diff(fast.logits.data(), plain.logits.data(), fast.logits.size()) <= 1e-4);
        for (const auto& [layer, toks] : fast.rec.layers())
            for (size_t t = 0; t < toks.size(); ++t) QCOMPARE(plain.rec.layers().at(layer)[t].experts, toks[t].experts);
    }
    void random_tensors_made_on_request_equal_the_made_ones() {
        // RandomTensors makes each tensor on its first find(), with the bytes of
        // make_random_tensors; shape_of() never makes it.
        const moe::ModelConfig cfg = moe::load_model_config(test_support::fixture_path("bf16_tied"));
        for (const moe::DType dt : {moe::DType::f32, moe::DType::bf16, moe::DType::f16, moe::DType::f8_e4m3}) {
            const moe::RandomTensors lazy(cfg, dt, 5);
            const auto made = moe::make_random_tensors(cfg, dt, 5);
            {
                // Types and shapes (what a model's type summary reads) make nothing.
                auto src = std::make_shared<moe::RandomTensors>(cfg, dt, 5);
                const moe::TensorSource& as_source = *src;
                for (const std::string& n : src->names()) QCOMPARE(as_source.info(n)->dtype, made->find(n)->dtype);
                if (dt != moe::DType::f8_e4m3)
                    for (const std::string& n : src->names()) QVERIFY(src->pending(n) != nullptr);
            }
            QCOMPARE(lazy.names(), made->names());
            QCOMPARE(lazy.weight_bytes(), made->weight_bytes());
            for (const std::string& n : made->names()) {
                const moe::TensorView* shape = lazy.shape_of(n);
                QVERIFY(shape);
                if (dt != moe::DType::f8_e4m3) QVERIFY(lazy.pending(n) != nullptr && shape->data == nullptr);
                const moe::TensorView* a = lazy.find(n);
                const moe::TensorView* b = made->find(n);
                QCOMPARE(a->shape, b->shape);
                QCOMPARE(a->dtype, b->dtype);
                QCOMPARE(a->nbytes, b->nbytes);
                QVERIFY(std::memcmp(a->data, b->data, a->nbytes) == 0);
                QVERIFY(lazy.pending(n) == nullptr);
            }
        }
    }

    void shared_off_changes_logits() {
        auto m = load("f32_sharded_gqa");
        const auto ids = test_ids(*m, 8);
        const Run base = prefill(*m, ids);
        const auto mask = moe::ExpertMask::parse("*:shared", m->config(), moe::MaskMode::reroute);
        const Run off = prefill(*m, ids, &mask);
        QVERIFY(max_diff(off.logits.data(), base.logits.data(), base.logits.size()) > 1e-3);
        // The first MoE layer routes before any shared expert ran: same selection.
        const auto& first = *off.rec.layers().begin();
        for (size_t t = 0; t < ids.size(); ++t)
            QCOMPARE(first.second[t].experts, base.rec.layers().at(first.first)[t].experts);
    }
};

QTEST_APPLESS_MAIN(ForwardTest)
#include "test_forward.moc"
