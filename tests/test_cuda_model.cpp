// End-to-end parity of the CUDA backend with the CPU backend (the reference): the DeepSeekMoE
// checkpoints of tests/fixtures (F32 and BF16, GQA, tied embeddings, linear and dynamic RoPE
// scaling, dense first layers) with every mask of their golden cases (reroute, drop, shared
// off, k, skip-top), and the embedded default model; each as one prefill of the case's ids,
// of those ids three times over (a step large enough for the grouped expert products), and
// token-by-token decode through the device KV cache, replayed from CUDA graphs and launch by
// launch.
//
// Tolerances. F32 weights: the products run in f32 (no TF32) in another summation order:
// max |Δlogit| ≤ 1e-3 · max(1, max |logit|). BF16 weights: the device rounds activations to
// BF16 for the tensor cores where the CPU keeps f32: max |Δlogit| ≤ 3e-2 · max(1, max |logit|).
// Routing: a token's experts must be the CPU's unless the CPU's margin at the top-k boundary
// (selection score of rank k-1 minus the best one left out) is below 1e-4 (F32) or 2e-2
// (BF16); such tokens are counted and reported. Labelled gpu; without a CUDA device every
// case is skipped with the driver's reason.
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "engine/cuda/cuda_model.h"
#include "engine/error.h"
#include "engine/expert_mask.h"
#include "engine/model.h"
#include "tests/cuda_test_support.h"
#include "tests/test_support.h"

namespace {

const char* kFixtures[] = {"f32_single", "f32_sharded_gqa", "bf16_tied", "f32_rope_linear", "f32_rope_dynamic",
                           "f32_dense2_4layers"};
const std::string kEmbedded = std::string(MOE_SOURCE_DIR) + "/resources/models/default";

struct Run {
    std::vector<float> logits;  // [T, V]
    moe::RoutingRecorder routing;
};

Run run(const moe::Model& model, const std::vector<int32_t>& ids, const moe::ExpertMask& mask, bool decode) {
    Run r;
    moe::Session s(model);
    moe::ForwardOptions opt;
    opt.mask = &mask;
    opt.observer = &r.routing;
    if (!decode) {
        s.forward(ids, opt, r.logits);
        return r;
    }
    std::vector<float> step;
    for (size_t t = 0; t < ids.size(); ++t) {
        opt.source = t == 0 ? moe::TokenSource::prompt : moe::TokenSource::generated;
        s.forward(std::span<const int32_t>(ids).subspan(t, 1), opt, step);
        r.logits.insert(r.logits.end(), step.begin(), step.end());
    }
    return r;
}

}  // namespace

class CudaModelTest : public QObject {
    Q_OBJECT
    int64_t near_ties_ = 0, tokens_compared_ = 0;

private slots:
    void initTestCase() {
        MOE_SKIP_WITHOUT_GPU();
        moe::cuda::register_backend();
        const auto dev = moe::cuda::first_device();
        qInfo("device: %s (compute %d.%d)", dev->name.c_str(), dev->cc_major, dev->cc_minor);
    }
    void cleanupTestCase() {
        qInfo("routing: %lld of %lld token-layers differ from the CPU, each within the near-tie margin",
              static_cast<long long>(near_ties_), static_cast<long long>(tokens_compared_));
    }

    void matchesTheCpu_data() {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<QString>("mask");
        QTest::addColumn<QString>("mode");
        QTest::addColumn<QString>("form");  // prefill | long | decode (CUDA graphs) | decode-eager
        QTest::addColumn<QVariantList>("ids");
        for (const char* f : kFixtures) {
            const std::string dir = test_support::fixture_path(f);
            const auto golden = test_support::read_json(dir + "/golden.json");
            for (const auto& c : golden["cases"]) {
                QVariantList ids;
                for (int32_t id : c["ids"].get<std::vector<int32_t>>()) ids << id;
                for (const char* form : {"prefill", "long", "decode", "decode-eager"})
                    QTest::newRow((std::string(f) + "/" + c["name"].get<std::string>() + "/" + form).c_str())
                        << QString::fromStdString(dir) << QString::fromStdString(c["mask"].get<std::string>())
                        << QString::fromStdString(c["mask_mode"].get<std::string>()) << QString(form) << ids;
            }
        }
        if (std::filesystem::exists(kEmbedded + "/model.safetensors")) {
            QVariantList ids;
            std::mt19937 rng(7);
            for (int i = 0; i < 40; ++i) ids << static_cast<int32_t>(rng() % 4000);
            for (const char* mask : {"", "*:shared", "L1:0,1,2,3;*:k=3", "*:skip-top=1;*:skip-random=1@5"})
                for (const char* form : {"prefill", "long", "decode", "decode-eager"})
                    QTest::newRow((std::string("embedded/") + mask + "/" + form).c_str())
                        << QString::fromStdString(kEmbedded) << QString(mask) << QString("reroute") << QString(form) << ids;
        }
    }

    void matchesTheCpu() {
        QFETCH(QString, dir);
        QFETCH(QString, mask);
        QFETCH(QString, mode);
        QFETCH(QString, form);
        QFETCH(QVariantList, ids);
        std::vector<int32_t> tokens;
        for (const QVariant& v : ids) tokens.push_back(v.toInt());
        if (form == "long") {
            const std::vector<int32_t> once = tokens;
            for (int r = 0; r < 2; ++r) tokens.insert(tokens.end(), once.begin(), once.end());
        }
        moe::LoadOptions cpu_opt;
        cpu_opt.threads = 2;
        moe::LoadOptions gpu_opt;
        gpu_opt.backend = moe::Backend::cuda;
        gpu_opt.cuda_graphs = form != "decode-eager";
        const auto cpu = moe::load_model(dir.toStdString(), cpu_opt);
        const auto gpu = moe::load_model(dir.toStdString(), gpu_opt);
        QCOMPARE(gpu->backend(), moe::Backend::cuda);
        const moe::ExpertMask m =
            moe::ExpertMask::parse(mask.toStdString(), cpu->config(), moe::parse_mask_mode(mode.toStdString()));
        const bool decode = form.startsWith("decode");
        const Run a = run(*cpu, tokens, m, decode);
        const Run b = run(*gpu, tokens, m, decode);

        const bool bf16 = cpu->dtype_summary() != "F32";
        QCOMPARE(b.logits.size(), a.logits.size());
        double max_abs = 0, max_diff = 0;
        for (size_t i = 0; i < a.logits.size(); ++i) {
            max_abs = std::max(max_abs, std::abs(static_cast<double>(a.logits[i])));
            max_diff = std::max(max_diff, std::abs(static_cast<double>(a.logits[i]) - b.logits[i]));
        }
        const double tol = (bf16 ? 3e-2 : 1e-3) * std::max(1.0, max_abs);
        QVERIFY2(max_diff <= tol, qPrintable(QString("max |dlogit| %1 > %2 (max |logit| %3)").arg(max_diff).arg(tol).arg(max_abs)));

        const double tie = bf16 ? 2e-2 : 1e-4;
        QCOMPARE(b.routing.layers().size(), a.routing.layers().size());
        for (const auto& [layer, routed] : a.routing.layers()) {
            const auto it = b.routing.layers().find(layer);
            QVERIFY(it != b.routing.layers().end());
            QCOMPARE(it->second.size(), routed.size());
            for (size_t t = 0; t < routed.size(); ++t) {
                ++tokens_compared_;
                const auto& x = routed[t];
                const auto& y = it->second[t];
                QCOMPARE(y.source, x.source);
                if (x.experts != y.experts) {
                    QVERIFY2(x.margin < tie, qPrintable(QString("layer %1 position %2: experts differ with margin %3")
                                                            .arg(layer).arg(t).arg(x.margin)));
                    ++near_ties_;
                    continue;
                }
                for (size_t r = 0; r < x.gate_weights.size(); ++r)
                    QVERIFY2(std::abs(x.gate_weights[r] - y.gate_weights[r]) <= (bf16 ? 1e-2 : 1e-4),
                             qPrintable(QString("layer %1 position %2 rank %3").arg(layer).arg(t).arg(r)));
                QVERIFY(std::abs(x.entropy - y.entropy) <= (bf16 ? 5e-2 : 1e-3));
            }
        }
    }

    void refusesWhatItDoesNotRun() {
        // A V2 checkpoint (MLA) is refused by name, not run wrongly.
        moe::LoadOptions o;
        o.backend = moe::Backend::cuda;
        try {
            moe::load_model(test_support::fixture_path("v2lite_yarn"), o);
            QFAIL("a V2 checkpoint loaded on the CUDA backend");
        } catch (const moe::Error& e) {
            QCOMPARE(e.kind(), moe::ErrorKind::input);
            QVERIFY2(std::string(e.what()).find("CPU backend") != std::string::npos, e.what());
        }
    }
};

QTEST_APPLESS_MAIN(CudaModelTest)
#include "test_cuda_model.moc"
