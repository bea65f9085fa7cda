// End-to-end parity of the CUDA backend with the CPU backend (the reference): the DeepSeekMoE
// checkpoints of tests/fixtures (F32 and BF16, GQA, tied embeddings, linear and dynamic RoPE
// scaling, dense first layers) with every mask of their golden cases (reroute, drop, shared
// off, k, skip-top), and the embedded default model; each as one prefill of the case's ids,
// of those ids three times over (a step large enough for the grouped expert products), and
// token-by-token decode through the device KV cache, replayed from CUDA graphs and launch by
// launch.
//
// Tolerances (max |Δlogit| / max(1, max |logit|); the CPU's margin at the top-k boundary — the
// selection score of rank k-1 minus the best one left out — below which a token may be routed
// elsewhere; gate weights; entropy):
//   F32 weights (f32 products, no TF32, another summation order):   1e-3, 1e-4, 1e-4, 1e-3
//   BF16 weights, exact activations (the default: two BF16 parts):   3e-3, 2e-3, 1e-3, 1e-2
//   BF16 weights, BF16 activations (--activations bf16, prefill):    3e-2, 0.15, 1e-2, 5e-2
//   a BF16 KV cache (MOEWB_CUDA_KV_CACHE=bf16; prefill and decode):  the same
// Tokens routed elsewhere are counted and reported with the largest such margin. A token routed elsewhere at a near tie changes
// its own and (through attention) every later position's logits, so logits and gate weights
// are compared at the positions before the first such token; the rest are counted too. Labelled gpu; without a CUDA device every
// case is skipped with the driver's reason.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "engine/cuda/cuda_model.h"
#include "engine/cuda/device.h"
#include "engine/error.h"
#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/scoring.h"
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

std::vector<int32_t> tokens_of(const QVariantList& ids) {
    std::vector<int32_t> tokens;
    for (const QVariant& v : ids) tokens.push_back(v.toInt());
    return tokens;
}

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

// fn(layer, t, x, y) for each token t of each MoE layer of two runs (x of a, y of b), once it
// is checked that they routed the same layers and as many tokens; stops at the first failure.
template <typename F>
void each_routed(const Run& a, const Run& b, F&& fn) {
    QCOMPARE(b.routing.layers().size(), a.routing.layers().size());
    for (const auto& [layer, routed] : a.routing.layers()) {
        const auto it = b.routing.layers().find(layer);
        QVERIFY(it != b.routing.layers().end());
        QCOMPARE(it->second.size(), routed.size());
        for (size_t t = 0; t < routed.size(); ++t) {
            fn(layer, t, routed[t], it->second[t]);
            if (QTest::currentTestFailed()) return;
        }
    }
}

}  // namespace

class CudaModelTest : public QObject {
    Q_OBJECT
    int64_t near_ties_ = 0, tokens_compared_ = 0, positions_compared_ = 0, positions_after_ties_ = 0;
    // By kind (F32; BF16 exact activations; BF16 activations): max |Δlogit| / max(1, max |logit|),
    // and the largest CPU margin of a token the device routed elsewhere.
    double worst_ratio_[3] = {0, 0, 0}, worst_flip_[3] = {0, 0, 0};

    int64_t layers_of_ = 0, moe_layers_of_ = 0;  // of the model the last sameWithSwitch loaded

    // MOEWB_CUDA_DECODE_KERNEL=kernel (layer, stream or step) against the launches, bit for
    // bit, and counted (counter) to have run every layer; skipped_ says whether it skipped.
    bool skipped_ = false;
    void oneLaunchMatchesLaunches(const char* kernel, int64_t (*counter)()) {
        // The one-launch kernels compute the scalar decode split, the fused rotary embedding and
        // an f32 cache; with other choices in the environment (the suites' switch passes) the two
        // are not the same computation, or the kernel does not run.
        skipped_ = true;
        for (const auto& [name, value] : moe::cuda::backend_switches())
            if ((name == "decode_attention" && value != "scalar" && value != "warp") ||
                (name == "rope" && value != "fused") || (name == "kv_cache" && value != "f32"))
                QSKIP(qPrintable(QString::fromStdString("the environment asks for " + name + " " + value +
                                                        ": the launches compute otherwise than the " + kernel +
                                                        " kernel")));
        skipped_ = false;
        QFETCH(QString, mask);
        const int64_t ran = sameWithSwitch("MOEWB_CUDA_DECODE_KERNEL", kernel, nullptr, counter);
        qInfo("%lld layers as one %s launch", static_cast<long long>(ran), kernel);
        // Every layer of every step (or, through a graph, of each capture) when no mask keeps
        // the MoE layers from it.
        if (!QTest::currentTestFailed() && !mask.contains("skip")) QVERIFY(ran >= layers_of_);
    }

    // The row's model loaded as the environment asks (without `unset`) and once more with var
    // set to value (the environment restored after): both decode the row's ids under its mask,
    // logits and routing compared bit for bit. Returns how far counter() moved in the second run.
    int64_t sameWithSwitch(const char* var, const char* value, const char* unset, int64_t (*counter)()) {
        QFETCH(QString, dir);
        QFETCH(QString, mask);
        QFETCH(QString, mode);
        QFETCH(QString, form);
        QFETCH(QVariantList, ids);
        const std::vector<int32_t> tokens = tokens_of(ids);
        moe::LoadOptions o;
        o.backend = moe::Backend::cuda;
        o.cuda_graphs = form != "decode-eager";
        std::vector<std::pair<const char*, std::optional<QByteArray>>> saved;
        for (const char* v : {var, unset})
            if (v) saved.emplace_back(v, qEnvironmentVariableIsSet(v) ? std::optional(qgetenv(v)) : std::nullopt);
        if (unset) qunsetenv(unset);
        qunsetenv(var);
        const auto plain = moe::load_model(dir.toStdString(), o);
        qputenv(var, value);
        const auto switched = moe::load_model(dir.toStdString(), o);
        for (const auto& [v, was] : saved)
            if (was)
                qputenv(v, *was);
            else
                qunsetenv(v);
        const moe::ModelConfig& c = plain->config();
        layers_of_ = c.num_hidden_layers;
        moe_layers_of_ = 0;
        for (int64_t i = 0; i < c.num_hidden_layers; ++i) moe_layers_of_ += c.is_moe_layer(i) ? 1 : 0;
        const moe::ExpertMask m =
            moe::ExpertMask::parse(mask.toStdString(), c, moe::parse_mask_mode(mode.toStdString()));
        const Run a = run(*plain, tokens, m, true);
        const int64_t before = counter();
        const Run b = run(*switched, tokens, m, true);
        const int64_t ran = counter() - before;
        // A decode step so run is captured into a CUDA graph as the plain steps are (a capture
        // that failed would leave the model running launch by launch).
        if (form == "decode") [&] { QCOMPARE(switched->uses_cuda_graphs(), plain->uses_cuda_graphs()); }();
        if (QTest::currentTestFailed()) return ran;
        [&] {
            QCOMPARE(b.logits.size(), a.logits.size());
            for (size_t i = 0; i < a.logits.size(); ++i)
                if (std::memcmp(&a.logits[i], &b.logits[i], sizeof(float)) != 0)
                    QFAIL(qPrintable(QString("logit %1 (position %2): %3 as by default, %4 with %5=%6")
                                         .arg(i)
                                         .arg(i / static_cast<size_t>(c.vocab_size))
                                         .arg(static_cast<double>(a.logits[i]), 0, 'g', 9)
                                         .arg(static_cast<double>(b.logits[i]), 0, 'g', 9)
                                         .arg(var)
                                         .arg(value)));
        }();
        if (QTest::currentTestFailed()) return ran;
        each_routed(
            a, b,
            [&](int64_t layer, size_t t, const moe::RoutingRecorder::Token& x, const moe::RoutingRecorder::Token& y) {
                const QString where = QString("layer %1 position %2").arg(layer).arg(t);
                QVERIFY2(x.experts == y.experts, qPrintable(where + ": experts differ"));
                QVERIFY2(x.gate_weights == y.gate_weights, qPrintable(where + ": gate weights differ"));
                QVERIFY2(x.entropy == y.entropy && x.margin == y.margin,
                         qPrintable(where + ": entropy or margin differ"));
            });
        return ran;
    }

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
        qInfo("logits: %lld positions compared, %lld after a near tie not compared", static_cast<long long>(positions_compared_),
              static_cast<long long>(positions_after_ties_));
        const char* kinds[] = {"F32 weights", "BF16 weights, exact activations", "BF16 weights, BF16 activations"};
        for (int i = 0; i < 3; ++i)
            qInfo("%s: worst |dlogit| / max(1, max |logit|) %.3g, largest margin routed elsewhere %.3g", kinds[i],
                  worst_ratio_[i], worst_flip_[i]);
    }

    void matchesTheCpu_data() {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<QString>("mask");
        QTest::addColumn<QString>("mode");
        QTest::addColumn<QString>("form");  // prefill | long | decode (CUDA graphs) | decode-eager
        QTest::addColumn<QVariantList>("ids");
        QTest::addColumn<bool>("bf16_activations");  // LoadOptions::cuda_bf16_activations
        QTest::addColumn<bool>("kv_bf16");           // MOEWB_CUDA_KV_CACHE=bf16 when the model loads
        // Forms with steps of many tokens; BF16 models run them also with BF16 activations.
        auto activations_of = [](const char* form, bool bf16_model) {
            std::vector<bool> out{false};
            if (bf16_model && std::string(form) != "decode" && std::string(form) != "decode-eager") out.push_back(true);
            return out;
        };
        for (const char* f : kFixtures) {
            const std::string dir = test_support::fixture_path(f);
            const auto golden = test_support::read_json(dir + "/golden.json");
            const bool bf16_model = std::string(f).rfind("bf16", 0) == 0;
            for (const auto& c : golden["cases"]) {
                QVariantList ids;
                for (int32_t id : c["ids"].get<std::vector<int32_t>>()) ids << id;
                for (const char* form : {"prefill", "long", "decode", "decode-eager"}) {
                    for (const bool bf16_act : activations_of(form, bf16_model))
                        QTest::newRow((std::string(f) + "/" + c["name"].get<std::string>() + "/" + form +
                                       (bf16_act ? "/bf16-activations" : ""))
                                          .c_str())
                            << QString::fromStdString(dir) << QString::fromStdString(c["mask"].get<std::string>())
                            << QString::fromStdString(c["mask_mode"].get<std::string>()) << QString(form) << ids << bf16_act
                            << false;
                    // BF16 models also through a BF16 KV cache, prefill and decode.
                    if (bf16_model && std::string(form) != "long")
                        QTest::newRow((std::string(f) + "/" + c["name"].get<std::string>() + "/" + form + "/bf16-kv").c_str())
                            << QString::fromStdString(dir) << QString::fromStdString(c["mask"].get<std::string>())
                            << QString::fromStdString(c["mask_mode"].get<std::string>()) << QString(form) << ids << false
                            << true;
                }
            }
        }
        if (std::filesystem::exists(kEmbedded + "/model.safetensors")) {
            QVariantList ids;
            std::mt19937 rng(7);
            for (int i = 0; i < 40; ++i) ids << static_cast<int32_t>(rng() % 4000);
            for (const char* mask : {"", "*:shared", "L1:0,1,2,3;*:k=3", "*:skip-top=1;*:skip-random=1@5"})
                for (const char* form : {"prefill", "long", "decode", "decode-eager"})
                    for (const bool bf16_act : activations_of(form, true))
                        QTest::newRow((std::string("embedded/") + mask + "/" + form + (bf16_act ? "/bf16-activations" : "")).c_str())
                            << QString::fromStdString(kEmbedded) << QString(mask) << QString("reroute") << QString(form) << ids
                            << bf16_act << false;
            for (const char* form : {"prefill", "long", "decode", "decode-eager"})
                QTest::newRow((std::string("embedded/") + form + "/bf16-kv").c_str())
                    << QString::fromStdString(kEmbedded) << QString("") << QString("reroute") << QString(form) << ids << false
                    << true;
        }
    }

    void matchesTheCpu() {
        QFETCH(QString, dir);
        QFETCH(QString, mask);
        QFETCH(QString, mode);
        QFETCH(QString, form);
        QFETCH(QVariantList, ids);
        QFETCH(bool, bf16_activations);
        QFETCH(bool, kv_bf16);
        std::vector<int32_t> tokens = tokens_of(ids);
        if (form == "long") {
            const std::vector<int32_t> once = tokens;
            for (int r = 0; r < 2; ++r) tokens.insert(tokens.end(), once.begin(), once.end());
        }
        moe::LoadOptions cpu_opt;
        cpu_opt.threads = 2;
        moe::LoadOptions gpu_opt;
        gpu_opt.backend = moe::Backend::cuda;
        gpu_opt.cuda_graphs = form != "decode-eager";
        gpu_opt.cuda_bf16_activations = bf16_activations;
        const auto cpu = moe::load_model(dir.toStdString(), cpu_opt);
        if (kv_bf16) qputenv("MOEWB_CUDA_KV_CACHE", "bf16");
        else qunsetenv("MOEWB_CUDA_KV_CACHE");
        const auto gpu = moe::load_model(dir.toStdString(), gpu_opt);
        qunsetenv("MOEWB_CUDA_KV_CACHE");
        QCOMPARE(gpu->backend(), moe::Backend::cuda);
        QCOMPARE(gpu->backend_label(), std::string(bf16_activations ? "cuda-bf16" : "cuda") + (kv_bf16 ? "-kv-bf16" : ""));
        const moe::ExpertMask m =
            moe::ExpertMask::parse(mask.toStdString(), cpu->config(), moe::parse_mask_mode(mode.toStdString()));
        const bool decode = form.startsWith("decode");
        const Run a = run(*cpu, tokens, m, decode);
        const Run b = run(*gpu, tokens, m, decode);

        // Tolerances by how far the device's arithmetic is from the CPU's: f32 weights, or
        // BF16 weights with split (exact) activations, or BF16 weights with BF16 activations
        // or a BF16 KV cache (keys and values to 2⁻⁹, less than BF16 activations round).
        const bool bf16 = cpu->dtype_summary() != "F32";
        const int kind = kv_bf16 ? 2 : !bf16 ? 0 : bf16_activations ? 2 : 1;
        const double kLogit[] = {1e-3, 3e-3, 3e-2}, kTie[] = {1e-4, 2e-3, 0.15}, kGate[] = {1e-4, 1e-3, 1e-2},
                     kEntropy[] = {1e-3, 1e-2, 5e-2};
        const int64_t V = cpu->config().vocab_size;
        QCOMPARE(b.logits.size(), a.logits.size());
        const auto positions = static_cast<int64_t>(a.logits.size()) / V;

        // Routing first: where a near tie sent a token elsewhere, that position and every later
        // one (through attention) legitimately differ, so the logits are compared before it.
        const double tie = kTie[kind];
        int64_t first_flip = positions;
        double flip_margin = 0;
        each_routed(
            a, b,
            [&](int64_t layer, size_t t, const moe::RoutingRecorder::Token& x, const moe::RoutingRecorder::Token& y) {
                ++tokens_compared_;
                QCOMPARE(y.source, x.source);
                if (x.experts != y.experts) {
                    QVERIFY2(x.margin < tie, qPrintable(QString("layer %1 position %2: experts differ with margin %3")
                                                            .arg(layer)
                                                            .arg(t)
                                                            .arg(x.margin)));
                    ++near_ties_;
                    flip_margin = std::max(flip_margin, static_cast<double>(x.margin));
                    first_flip = std::min(first_flip, static_cast<int64_t>(t));
                    return;
                }
                if (static_cast<int64_t>(t) >= first_flip) return;  // downstream of a tie: not comparable
                for (size_t r = 0; r < x.gate_weights.size(); ++r)
                    QVERIFY2(std::abs(x.gate_weights[r] - y.gate_weights[r]) <= kGate[kind],
                             qPrintable(QString("layer %1 position %2 rank %3").arg(layer).arg(t).arg(r)));
                QVERIFY(std::abs(x.entropy - y.entropy) <= kEntropy[kind]);
            });
        if (QTest::currentTestFailed()) return;
        positions_compared_ += first_flip;
        positions_after_ties_ += positions - first_flip;

        double max_abs = 0, max_diff = 0;
        for (size_t i = 0; i < static_cast<size_t>(first_flip * V); ++i) {
            max_abs = std::max(max_abs, std::abs(static_cast<double>(a.logits[i])));
            max_diff = std::max(max_diff, std::abs(static_cast<double>(a.logits[i]) - b.logits[i]));
        }
        const double tol = kLogit[kind] * std::max(1.0, max_abs);
        QVERIFY2(max_diff <= tol, qPrintable(QString("max |dlogit| %1 > %2 (max |logit| %3) over the first %4 positions")
                                                 .arg(max_diff).arg(tol).arg(max_abs).arg(first_flip)));
        worst_ratio_[kind] = std::max(worst_ratio_[kind], max_diff / std::max(1.0, max_abs));
        worst_flip_[kind] = std::max(worst_flip_[kind], flip_margin);
    }

    // MOEWB_CUDA_DECODE_KERNEL=layer: each decoder layer of a one-token step as one cooperative
    // launch computes what the launches compute, so the logits and the routing are the same
    // bit for bit — through CUDA graphs and launch by launch, dense and MoE layers, F32 and BF16
    // weights, every mask (those the layer kernel does not take, skip-top and skip-random,
    // leave their MoE layers to the launches).
    void layerKernelMatchesLaunches_data() {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<QString>("mask");
        QTest::addColumn<QString>("mode");
        QTest::addColumn<QString>("form");
        QTest::addColumn<QVariantList>("ids");
        for (const char* f : kFixtures) {
            const std::string dir = test_support::fixture_path(f);
            const auto golden = test_support::read_json(dir + "/golden.json");
            for (const auto& c : golden["cases"]) {
                QVariantList ids;
                for (int32_t id : c["ids"].get<std::vector<int32_t>>()) ids << id;
                for (const char* form : {"decode", "decode-eager"})
                    QTest::newRow((std::string(f) + "/" + c["name"].get<std::string>() + "/" + form).c_str())
                        << QString::fromStdString(dir) << QString::fromStdString(c["mask"].get<std::string>())
                        << QString::fromStdString(c["mask_mode"].get<std::string>()) << QString(form) << ids;
            }
        }
        if (std::filesystem::exists(kEmbedded + "/model.safetensors")) {
            QVariantList ids;
            std::mt19937 rng(11);
            for (int i = 0; i < 40; ++i) ids << static_cast<int32_t>(rng() % 4000);
            for (const char* mask : {"", "*:shared", "L1:0,1,2,3;*:k=3", "*:skip-top=1;*:skip-random=1@5"})
                for (const char* form : {"decode", "decode-eager"})
                    QTest::newRow((std::string("embedded/") + mask + "/" + form).c_str())
                        << QString::fromStdString(kEmbedded) << QString(mask) << QString("reroute") << QString(form)
                        << ids;
            for (const char* form : {"decode", "decode-eager"})
                QTest::newRow((std::string("embedded/drop/") + form).c_str())
                    << QString::fromStdString(kEmbedded) << QString("L1:0,1,2,3;L2:5") << QString("drop")
                    << QString(form) << ids;
        }
    }

    void layerKernelMatchesLaunches() { oneLaunchMatchesLaunches("layer", moe::cuda::decode_layer_launches); }

    // The stream kernel (MOEWB_CUDA_DECODE_KERNEL=kernel: stream, a launch a layer; step, a run
    // of consecutive layers a launch) against the launches, bit for bit, and its launches
    // counted: where every layer can take it, a launch a layer, or one a step (or a capture)
    // for all the layers. Skipped, with the reason, on a GPU before compute capability 9.0 (no
    // bulk copies).
    void streamMatchesLaunches(const char* kernel) {
        const auto dev = moe::cuda::first_device();
        if (dev && dev->cc_major < 9) QSKIP("the stream kernel needs compute capability 9.0 (bulk copies)");
        QFETCH(QString, mask);
        const int64_t launches = moe::cuda::stream_kernel_launches();
        const int64_t layers = moe::cuda::decode_stream_launches();
        oneLaunchMatchesLaunches(kernel, moe::cuda::decode_stream_launches);
        if (skipped_ || QTest::currentTestFailed() || mask.contains("skip")) return;
        const int64_t ran = moe::cuda::decode_stream_launches() - layers;
        const int64_t took = moe::cuda::stream_kernel_launches() - launches;
        qInfo("%lld layers in %lld launches", static_cast<long long>(ran), static_cast<long long>(took));
        QVERIFY(took > 0);
        QCOMPARE(std::strcmp(kernel, "step") == 0 ? took * layers_of_ : took, ran);
    }
    void streamKernelMatchesLaunches_data() { layerKernelMatchesLaunches_data(); }
    void streamKernelMatchesLaunches() { streamMatchesLaunches("stream"); }
    void stepKernelMatchesLaunches_data() { layerKernelMatchesLaunches_data(); }
    void stepKernelMatchesLaunches() { streamMatchesLaunches("step"); }

    void routeInExpertsMatchesItsLaunch_data() { layerKernelMatchesLaunches_data(); }
    void routeInExpertsMatchesItsLaunch() {
        // The experts' gate and up launch routes the tokens with the router launch's device
        // function: the same experts, weights and logits, bit for bit. (With the layer kernel,
        // asked for by the environment, neither runs.)
        QFETCH(QString, mask);
        const int64_t ran = sameWithSwitch("MOEWB_CUDA_DECODE_ROUTE", "experts", "MOEWB_CUDA_DECODE_KERNEL",
                                           moe::cuda::routed_gate_up_launches);
        qInfo("%lld layers routed by their experts' launch", static_cast<long long>(ran));
        // Each MoE layer of each step, unless the mask asks for a skip (no plain router).
        if (!QTest::currentTestFailed() && !mask.contains("skip")) QVERIFY(ran >= moe_layers_of_);
    }

    void mergedAttentionMatchesLaunches_data() { layerKernelMatchesLaunches_data(); }
    void mergedAttentionMatchesLaunches() {
        // Each head's decode splits merged by the last of its blocks: the scalar split and the
        // merge launch's values, bit for bit, through the graphs and launch by launch. (With a
        // one-launch kernel asked for by the environment, the attention launches do not run.)
        QFETCH(QString, mask);
        const int64_t ran = sameWithSwitch("MOEWB_CUDA_DECODE_ATTENTION", "merged", "MOEWB_CUDA_DECODE_KERNEL",
                                           moe::cuda::merged_attention_launches);
        qInfo("%lld decode attentions merged by their last blocks", static_cast<long long>(ran));
        // Each layer of each step (of each capture through a graph) at least.
        if (!QTest::currentTestFailed()) QVERIFY(ran >= layers_of_);
    }

    // A scored step (Model::forward_scored: the rows scored on the device, the baseline's
    // log-probabilities kept in device memory) against the host's scores of the same model's
    // logits: NLL and KL within 1e-9 (the device's sums in another order), top-1 the same but
    // at near ties (1e-4), the kept log-probabilities within 1e-5; an unmasked step scored
    // against its own kept rows: the same NLL and a KL of 0 (1e-12) — a step makes the same
    // logits each time it runs, so an ablation's empty mask scores as its baseline.
    void scoredStepsMatchTheirLogits_data() {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<int>("tokens");
        QTest::newRow("f32_single") << QString::fromStdString(test_support::fixture_path("f32_single")) << 40;
        QTest::newRow("bf16_tied") << QString::fromStdString(test_support::fixture_path("bf16_tied")) << 40;
        if (std::filesystem::exists(kEmbedded + "/model.safetensors"))
            QTest::newRow("embedded") << QString::fromStdString(kEmbedded) << 300;
    }
    void scoredStepsMatchTheirLogits() {
        QFETCH(QString, dir);
        QFETCH(int, tokens);
        moe::LoadOptions o;
        o.backend = moe::Backend::cuda;
        const auto gpu = moe::load_model(dir.toStdString(), o);
        const int64_t V = gpu->config().vocab_size;
        std::mt19937 rng(5);
        std::vector<int32_t> ids;
        for (int i = 0; i < tokens; ++i) ids.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(V)));
        std::vector<int32_t> targets(ids.begin() + 1, ids.end());
        targets[3] = -1;
        const moe::ExpertMask mask = moe::ExpertMask::parse("*:0,1", gpu->config(), moe::MaskMode::reroute);

        // The host's scores of the device's logits.
        std::vector<float> base, masked;
        moe::ForwardOptions plain, with_mask;
        with_mask.mask = &mask;
        moe::Session(*gpu).forward(ids, plain, base);
        moe::Session(*gpu).forward(ids, with_mask, masked);
        moe::HostScoreBank host_bank(static_cast<int64_t>(targets.size()), V);
        std::vector<moe::RowScore> want_kept, want_against;
        moe::ScoreRequest keep;
        keep.targets = targets;
        keep.keep = &host_bank;
        moe::score_rows_on_host(gpu->pool(), base, V, keep, want_kept);
        moe::ScoreRequest against = keep;
        against.keep = nullptr;
        against.reference = &host_bank;
        moe::score_rows_on_host(gpu->pool(), masked, V, against, want_against);

        // The device's, its bank of two rows more (kept from row 2 on).
        const auto bank = gpu->make_score_bank(static_cast<int64_t>(targets.size()) + 2);
        std::vector<moe::RowScore> kept, scored, itself;
        keep.keep = bank.get();
        keep.keep_row = 2;
        moe::Session(*gpu).forward_scored(ids, plain, keep, kept);
        against.reference = bank.get();
        against.reference_row = 2;
        moe::Session(*gpu).forward_scored(ids, with_mask, against, scored);
        moe::Session(*gpu).forward_scored(ids, plain, against, itself);

        double worst_nll = 0, worst_kl = 0, worst_self = 0;
        int64_t near_ties = 0;
        std::vector<float> row(static_cast<size_t>(V));
        for (size_t r = 0; r < targets.size(); ++r) {
            const double nll_scale = std::max(1.0, std::abs(want_kept[r].nll));
            worst_nll = std::max(
                {worst_nll, std::abs(kept[r].nll - want_kept[r].nll) / nll_scale,
                 std::abs(scored[r].nll - want_against[r].nll) / std::max(1.0, std::abs(want_against[r].nll))});
            worst_kl =
                std::max(worst_kl, std::abs(scored[r].kl - want_against[r].kl) / std::max(1.0, want_against[r].kl));
            worst_self = std::max(worst_self, std::abs(itself[r].kl));
            QCOMPARE(itself[r].nll, kept[r].nll);
            // The top-1: the same, or a near tie of the host's row.
            for (const auto& [got, want, logits] : {std::tuple{kept[r].top, want_kept[r].top, &base},
                                                    std::tuple{scored[r].top, want_against[r].top, &masked}}) {
                if (got == want) continue;
                const float* l = logits->data() + r * V;
                QVERIFY2(std::abs(l[got] - l[want]) <= 1e-4f * std::max(1.0f, std::abs(l[want])),
                         qPrintable(QString("row %1: top %2 against %3").arg(r).arg(got).arg(want)));
                ++near_ties;
            }
            bank->read_row(2 + static_cast<int64_t>(r), row);
            for (int64_t v = 0; v < V; v += 97)
                QVERIFY(std::abs(row[v] - host_bank.row(static_cast<int64_t>(r))[v]) <=
                        1e-5f * std::max(1.0f, std::abs(row[v])));
        }
        QCOMPARE(kept[3].nll, 0.0);
        qInfo(
            "scored on the device: NLL within %.3g, KL within %.3g, KL of a step from its own rows %.3g, %lld near "
            "ties of the top-1",
            worst_nll, worst_kl, worst_self, static_cast<long long>(near_ties));
        QVERIFY(worst_nll <= 1e-9);
        QVERIFY(worst_kl <= 1e-9);
        QVERIFY(worst_self <= 1e-12);
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
