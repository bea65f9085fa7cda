// Bad input for the V2/V3 architectures, each a clear input error naming the tensor:
// FP8 weights without their block scales, scales of the wrong block count or dtype, FP8
// where only linear weights may be, a selection bias of the wrong length, a V3 config over
// V2 tensors (no bias) and a V2-Lite config over tensors with a q LoRA. Also: a V3
// checkpoint's MTP layer is not run, and a stray layer after it is refused; FP8 matrix
// products equal products with the dequantised weights.
#include <QtTest>

#include <map>
#include <set>

#include "engine/cpu/matmul.h"
#include "engine/cpu/thread_pool.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/random_weights.h"
#include "tests/test_support.h"

namespace {

// A tensor source that shows another with some tensors removed, replaced or added.
class EditedTensors : public moe::TensorSource {
public:
    explicit EditedTensors(std::shared_ptr<moe::TensorSource> base) : base_(std::move(base)) {}
    void remove(const std::string& name) { removed_.insert(name); }
    void put(const std::string& name, moe::DType dtype, std::vector<int64_t> shape, size_t bytes) {
        auto& e = extra_[name];
        e.bytes.assign(bytes, 0x38);  // 1.0 in e4m3, a small positive value otherwise
        e.view = {name, dtype, std::move(shape), nullptr, bytes};
        e.view.data = e.bytes.data();
    }
    const moe::TensorView* find(const std::string& name) const override {
        if (auto it = extra_.find(name); it != extra_.end()) return &it->second.view;
        return removed_.count(name) ? nullptr : base_->find(name);
    }
    std::vector<std::string> names() const override {
        std::set<std::string> out;
        for (const auto& n : base_->names())
            if (!removed_.count(n)) out.insert(n);
        for (const auto& [n, e] : extra_) out.insert(n);
        return {out.begin(), out.end()};
    }
    std::string describe() const override { return "edited weights"; }
    std::string file_of(const std::string&) const override { return "edited"; }
    size_t weight_bytes() const override { return base_->weight_bytes(); }

private:
    struct Entry {
        std::vector<uint8_t> bytes;
        moe::TensorView view;
    };
    std::shared_ptr<moe::TensorSource> base_;
    std::set<std::string> removed_;
    std::map<std::string, Entry> extra_;
};

moe::ModelConfig v3_config() {
    return moe::load_model_config(test_support::fixture_path("v3_fp8_mtp") + "/config.json");
}

QString load_problem(const moe::ModelConfig& c, const std::shared_ptr<moe::TensorSource>& t, const QStringList& needles) {
    try {
        moe::LoadOptions lo;
        lo.threads = 1;
        moe::make_model(c, t, lo);
    } catch (const moe::Error& e) {
        if (e.kind() != moe::ErrorKind::input) return QString("not an input error: ") + e.what();
        for (const QString& n : needles)
            if (!QString(e.what()).contains(n)) return "message lacks '" + n + "': " + e.what();
        qInfo("message: %s", e.what());
        return {};
    }
    return "accepted";
}

const std::string kQb = "model.layers.1.self_attn.q_b_proj.weight";

}  // namespace

class V2V3InputTest : public QObject {
    Q_OBJECT
private slots:
    void random_fp8_model_loads() {
        const auto c = v3_config();
        auto t = moe::make_random_tensors(c, moe::DType::f8_e4m3, 3);
        QVERIFY(t->find(kQb)->dtype == moe::DType::f8_e4m3);
        QVERIFY(t->find(kQb + "_scale_inv") != nullptr);
        QVERIFY(t->find("model.layers.1.mlp.gate.weight")->dtype == moe::DType::bf16);
        QCOMPARE(load_problem(c, t, {}), QString("accepted"));
    }
    void bad_fp8_and_bias_data() {
        QTest::addColumn<QString>("edit");
        QTest::addColumn<QStringList>("needles");
        QTest::newRow("scale missing") << "scale missing" << QStringList{QString::fromStdString(kQb), "no block scales", "_scale_inv"};
        QTest::newRow("scale blocks") << "scale blocks" << QStringList{"_scale_inv", "expected [2, 1]", "128x128"};
        QTest::newRow("scale dtype") << "scale dtype" << QStringList{"_scale_inv", "must be F32"};
        QTest::newRow("fp8 norm") << "fp8 norm" << QStringList{"input_layernorm", "only linear weights"};
        QTest::newRow("bias length") << "bias length" << QStringList{"e_score_correction_bias", "has shape [15]", "[16]"};
        QTest::newRow("no bias (V2 tensors)") << "no bias" << QStringList{"e_score_correction_bias", "missing"};
        QTest::newRow("stray layer") << "stray layer" << QStringList{"unexpected tensor", "model.layers.4."};
    }
    void bad_fp8_and_bias() {
        QFETCH(QString, edit);
        QFETCH(QStringList, needles);
        const auto c = v3_config();
        auto e = std::make_shared<EditedTensors>(moe::make_random_tensors(c, moe::DType::f8_e4m3, 3));
        const int64_t H = c.hidden_size;
        if (edit == "scale missing") e->remove(kQb + "_scale_inv");
        if (edit == "scale blocks") e->put(kQb + "_scale_inv", moe::DType::f32, {1, 1}, 4);
        if (edit == "scale dtype") e->put(kQb + "_scale_inv", moe::DType::bf16, {2, 1}, 4);
        if (edit == "fp8 norm") e->put("model.layers.0.input_layernorm.weight", moe::DType::f8_e4m3, {H}, size_t(H));
        if (edit == "bias length") e->put("model.layers.1.mlp.gate.e_score_correction_bias", moe::DType::f32, {15}, 60);
        if (edit == "no bias")
            for (int64_t l = 0; l < c.num_hidden_layers; ++l)
                e->remove("model.layers." + std::to_string(l) + ".mlp.gate.e_score_correction_bias");
        if (edit == "stray layer") e->put("model.layers.4.enorm.weight", moe::DType::bf16, {H}, size_t(2 * H));
        const QString problem = load_problem(c, e, needles);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
    }
    void v2lite_config_over_q_lora_tensors() {
        const moe::ModelConfig v3 = v3_config();
        nlohmann::json j = test_support::read_json(test_support::fixture_path("v3_fp8_mtp") + "/config.json");
        j["q_lora_rank"] = nullptr;
        const moe::ModelConfig lite = moe::parse_model_config(j.dump(), "lite-config");
        const QString problem = load_problem(lite, moe::make_random_tensors(v3, moe::DType::bf16, 3),
                                             {"q_proj.weight", "missing"});
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
    }
    void mtp_layer_is_not_run() {
        // The fixture's checkpoint holds the MTP layer; the same weights without it give the
        // same logits.
        moe::LoadOptions lo;
        lo.threads = 1;
        const std::string dir = test_support::fixture_path("v3_fp8_mtp");
        auto full = moe::load_model(dir, lo);
        auto ckpt = std::make_shared<moe::Checkpoint>(dir);
        auto without = std::make_shared<EditedTensors>(ckpt);
        int removed = 0;
        const std::string prefix = "model.layers." + std::to_string(full->config().num_hidden_layers) + ".";
        for (const auto& n : ckpt->names())
            if (n.compare(0, prefix.size(), prefix) == 0) without->remove(n), ++removed;
        QVERIFY(removed > 10);
        auto pruned = moe::make_model(full->config(), without, lo);
        const std::vector<int32_t> ids{0, 5, 9, 13, 2};
        std::vector<float> a, b;
        moe::Session(*full).forward(ids, {}, a);
        moe::Session(*pruned).forward(ids, {}, b);
        QCOMPARE(a, b);
    }
    void fp8_matmul_equals_dequantised() {
        // W [130, 200] in FP8 with 2x2 blocks of scales (partial edge blocks); y = x·Wᵀ must
        // equal the product with W = q·s computed by hand, in every kernel family.
        const int64_t N = 130, K = 200, T = 3;
        std::vector<uint8_t> q(static_cast<size_t>(N * K));
        for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>((i * 37 + 11) % 256 == 0x7f ? 0 : (i * 37 + 11) % 256);
        for (auto& b : q) if ((b & 0x7f) == 0x7f) b = 0x10;  // no NaN codes
        const std::vector<float> scale{0.5f, 2.0f, 0.25f, 3.0f};
        moe::TensorView w{"w", moe::DType::f8_e4m3, {N, K}, q.data(), q.size()};
        moe::TensorView s{"w_scale_inv", moe::DType::f32, {2, 2}, scale.data(), scale.size() * 4};
        const auto m = moe::cpu::WeightMatrix::of_fp8(w, s);
        std::vector<float> x(static_cast<size_t>(T * K));
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i % 17) - 8) / 8.0f;
        std::vector<double> ref(static_cast<size_t>(T * N), 0.0);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t n = 0; n < N; ++n)
                for (int64_t k = 0; k < K; ++k)
                    ref[t * N + n] += double(x[t * K + k]) *
                                      double(moe::f8_e4m3_to_f32(q[n * K + k]) * scale[(n / 128) * 2 + k / 128]);
        moe::cpu::ThreadPool pool(2);
        for (bool generic : {false, true}) {
            moe::cpu::force_generic_kernels(generic);
            std::vector<float> y(static_cast<size_t>(T * N));
            moe::cpu::matmul(x.data(), T, K, m, y.data(), N, pool);
            for (size_t i = 0; i < y.size(); ++i)
                QVERIFY2(std::abs(y[i] - ref[i]) <= 1e-4 * std::max(1.0, std::abs(ref[i])), qPrintable(QString::number(i)));
        }
        moe::cpu::force_generic_kernels(false);
        // Widening is the same to the bit in every kernel family, for every code but NaN.
        {
            std::vector<uint8_t> codes;
            for (int c = 0; c < 256; ++c)
                if ((c & 0x7f) != 0x7f) codes.push_back(static_cast<uint8_t>(c));
            while (codes.size() < 256) codes.push_back(0x38);
            const float sc[2] = {0.37f, 1.0e-3f};
            moe::TensorView cw{"c", moe::DType::f8_e4m3, {1, 256}, codes.data(), codes.size()};
            moe::TensorView cs{"c_scale_inv", moe::DType::f32, {1, 2}, sc, sizeof sc};
            const auto cm = moe::cpu::WeightMatrix::of_fp8(cw, cs);
            std::vector<float> fast(256), slow(256);
            moe::cpu::widen_row(cm, 0, fast.data());
            moe::cpu::force_generic_kernels(true);
            moe::cpu::widen_row(cm, 0, slow.data());
            moe::cpu::force_generic_kernels(false);
            for (int i = 0; i < 256; ++i) {
                QCOMPARE(fast[i], slow[i]);
                QCOMPARE(slow[i], moe::f8_e4m3_to_f32(codes[i]) * sc[i / 128]);
            }
        }
        // e4m3 decoding: a few exact values.
        QCOMPARE(moe::f8_e4m3_to_f32(0x38), 1.0f);
        QCOMPARE(moe::f8_e4m3_to_f32(0x7e), 448.0f);
        QCOMPARE(moe::f8_e4m3_to_f32(0x01), 0.001953125f);  // smallest subnormal 2^-9
        QCOMPARE(moe::f8_e4m3_to_f32(0xb8), -1.0f);
        QVERIFY(std::isnan(moe::f8_e4m3_to_f32(0x7f)));
        QCOMPARE(moe::f32_to_f8_e4m3(1.0f), uint8_t(0x38));
        QCOMPARE(moe::f32_to_f8_e4m3(1000.0f), uint8_t(0x7e));  // saturates at 448
        // Encoding is round-to-nearest-even: for every code, the midpoints to its neighbours
        // and points just inside them land on the right code.
        for (int c = 0; c < 0x7e; ++c) {
            const float lo = moe::f8_e4m3_to_f32(static_cast<uint8_t>(c)), hi = moe::f8_e4m3_to_f32(static_cast<uint8_t>(c + 1));
            const float mid = (lo + hi) / 2;
            QCOMPARE(int(moe::f32_to_f8_e4m3(lo)), c);
            QCOMPARE(int(moe::f32_to_f8_e4m3(std::nextafter(mid, lo))), c);
            QCOMPARE(int(moe::f32_to_f8_e4m3(std::nextafter(mid, hi))), c + 1);
            QCOMPARE(int(moe::f32_to_f8_e4m3(mid)), (c % 2 == 0) ? c : c + 1);  // ties to even
            QCOMPARE(int(moe::f32_to_f8_e4m3(-lo)), c | 0x80);
        }
    }
};

QTEST_APPLESS_MAIN(V2V3InputTest)
#include "test_v2v3_input.moc"
