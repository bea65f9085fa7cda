// config.json reading on the published DeepSeekMoE 16B config (../shared/configs beside the
// checkout): which layers are MoE, and parameter counts against the published figures
// (16.4 B total, 2.8 B activated of which 0.21 B is the embedding table — model-spec.md §1).
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/host_memory.h"
#include "engine/model_config.h"
#include "engine/random_weights.h"

namespace {
const std::string kShared = std::string(MOE_SOURCE_DIR) + "/../shared/configs/";
}

class ConfigTest : public QObject {
    Q_OBJECT
private slots:
    void deepseek_moe_16b() {
        const std::string path = kShared + "deepseek-moe-16b-base.json";
        if (!std::filesystem::exists(path)) QSKIP("../shared/configs is not beside this checkout");
        const moe::ModelConfig c = moe::load_model_config(path);
        QCOMPARE(c.arch, moe::Architecture::deepseek_moe);
        QVERIFY(!c.is_moe_layer(0));
        for (int64_t l = 1; l < 28; ++l) QVERIFY(c.is_moe_layer(l));
        QCOMPARE(c.n_moe_layers(), int64_t(27));
        QCOMPARE(c.head_dim, int64_t(128));
        QCOMPARE(c.shared_width(), int64_t(2816));
        QVERIFY(std::abs(c.total_params() / 16.38e9 - 1) < 0.002);
        // Published "2.8 B activated" counts the embedding table (0.21 B) once more.
        QVERIFY(std::abs((c.activated_params() + c.vocab_size * c.hidden_size) / 2.83e9 - 1) < 0.005);
    }
    void host_memory_from_meminfo() {
        // MemAvailable plus SwapFree, in bytes; nothing where the kernel gives no MemAvailable.
        const char* text =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n"
            "SwapTotal: 4000 kB\nSwapFree:        3000 kB\n";
        QCOMPARE(moe::parse_available_memory(text), std::optional<uint64_t>((20000000ull + 3000) * 1024));
        QCOMPARE(moe::parse_available_memory("MemAvailable: 7 kB\n"), std::optional<uint64_t>(7 * 1024));
        QVERIFY(!moe::parse_available_memory("MemTotal: 7 kB\nMemFree: 3 kB\n"));
        QVERIFY(!moe::parse_available_memory("MemAvailableX: 7 kB\n"));
        QCOMPARE(moe::format_gib(3ull << 29), std::string("1.50 GiB"));
        QVERIFY(moe::available_host_memory().value_or(1) > 0);
    }
    void random_weight_bytes_without_making_them() {
        // The shapes-only count equals the bytes of the tensors made, BF16 and FP8 (the
        // linears quantised in 128 × 128 blocks with their scales).
        const std::string fixtures = std::string(MOE_SOURCE_DIR) + "/tests/fixtures/";
        for (const char* model : {"f32_single", "v3_fp8_mtp"}) {
            const moe::ModelConfig c = moe::load_model_config(fixtures + model + "/config.json");
            for (const moe::DType d : {moe::DType::bf16, moe::DType::f8_e4m3, moe::DType::f32}) {
                const auto made = moe::make_random_tensors(c, d, 3);
                size_t bytes = 0;
                for (const std::string& name : made->names()) bytes += made->find(name)->nbytes;
                QCOMPARE(moe::random_weight_bytes(c, d), bytes);
                QCOMPARE(moe::RandomTensors(c, d, 3).weight_bytes(), bytes);
            }
        }
        // A lazy source has every byte still to make until it is read.
        const moe::ModelConfig c = moe::load_model_config(fixtures + "f32_single/config.json");
        moe::RandomTensors lazy(c, moe::DType::bf16, 3);
        QCOMPARE(lazy.bytes_to_make(), lazy.weight_bytes());
        const size_t embed = lazy.find("model.embed_tokens.weight")->nbytes;
        QCOMPARE(lazy.bytes_to_make(), lazy.weight_bytes() - embed);
    }
    void text_that_is_not_json() {
        // The hint about Python's NaN and Infinity only where the text has them.
        auto message = [](const std::string& text) {
            try {
                moe::parse_model_config(text, "cfg");
            } catch (const moe::Error& e) {
                return QString(e.what());
            }
            return QString();
        };
        const QString prose = message("# A model\nnot a config\n");
        QVERIFY2(prose.contains("not valid JSON") && !prose.contains("NaN"), qPrintable(prose));
        const QString nan = message(R"({"rms_norm_eps": NaN})");
        QVERIFY2(nan.contains("not valid JSON (NaN and Infinity are not JSON)"), qPrintable(nan));
    }
    void moe_layer_frequency() {
        const auto c = moe::parse_model_config(R"({"model_type":"deepseek","vocab_size":8,"hidden_size":8,
            "intermediate_size":8,"moe_intermediate_size":4,"num_hidden_layers":6,"num_attention_heads":2,
            "n_routed_experts":4,"num_experts_per_tok":2,"first_k_dense_replace":1,"moe_layer_freq":2})", "cfg");
        QVERIFY(!c.is_moe_layer(0) && !c.is_moe_layer(1) && c.is_moe_layer(2) && !c.is_moe_layer(3) && c.is_moe_layer(4));
        QCOMPARE(c.n_shared_experts, int64_t(0));
        QCOMPARE(c.num_key_value_heads, int64_t(2));
    }
    void published_v2_v3_configs_parse() {
        // The published configs of DeepSeek-V2-Lite, V2 and V3 (model-spec-v2v3.md §3).
        struct Expect {
            const char* file;
            moe::Architecture arch;
            int64_t q_lora, E, K, groups, topk_groups;
            moe::TopkMethod method;
            double scale, mscale_all_dim;
            bool fp8;
        };
        const Expect expect[] = {
            {"deepseek-v2-lite.json", moe::Architecture::deepseek_v2, 0, 64, 6, 1, 1, moe::TopkMethod::greedy, 1.0, 0.707,
             false},
            {"deepseek-v2.json", moe::Architecture::deepseek_v2, 1536, 160, 6, 8, 3,
             moe::TopkMethod::group_limited_greedy, 16.0, 0.707, false},
            {"deepseek-v3.json", moe::Architecture::deepseek_v3, 1536, 256, 8, 8, 4, moe::TopkMethod::noaux_tc, 2.5, 1.0,
             true},
        };
        for (const Expect& e : expect) {
            const std::string path = kShared + e.file;
            if (!std::filesystem::exists(path)) QSKIP("../shared/configs is not beside this checkout");
            const moe::ModelConfig c = moe::load_model_config(path);
            QCOMPARE(c.arch, e.arch);
            QVERIFY(c.is_mla());
            QCOMPARE(c.q_lora_rank, e.q_lora);
            QCOMPARE(c.kv_lora_rank, int64_t(512));
            QCOMPARE(c.qk_nope_head_dim, int64_t(128));
            QCOMPARE(c.qk_rope_head_dim, int64_t(64));
            QCOMPARE(c.v_head_dim, int64_t(128));
            QCOMPARE(c.n_routed_experts, e.E);
            QCOMPARE(c.num_experts_per_tok, e.K);
            QCOMPARE(c.n_group, e.groups);
            QCOMPARE(c.topk_group, e.topk_groups);
            QCOMPARE(c.topk_method, e.method);
            QCOMPARE(c.routed_scaling_factor, e.scale);
            QCOMPARE(c.rope_scaling, moe::RopeScaling::yarn);
            QCOMPARE(c.rope_scaling_factor, 40.0);
            QCOMPARE(c.rope_original_max_position, int64_t(4096));
            QCOMPARE(c.yarn_mscale_all_dim, e.mscale_all_dim);
            QCOMPARE(c.fp8, e.fp8);
            QCOMPARE(c.kv_cache_values_per_layer(), int64_t(576));  // MLA's point
            // Softmax scale: 192^-1/2 · mscale², mscale = 0.1·m·ln 40 + 1 (model-spec-v2v3.md §1).
            const double ms = 0.1 * e.mscale_all_dim * std::log(40.0) + 1.0;
            QVERIFY(std::abs(c.softmax_scale() - ms * ms / std::sqrt(192.0)) < 1e-12);
        }
        // The values the spec lists: 0.1147214 (V2, V2-Lite) and 0.1352338 (V3).
        QVERIFY(std::abs(moe::load_model_config(kShared + "deepseek-v2-lite.json").softmax_scale() - 0.1147214) < 1e-6);
        QVERIFY(std::abs(moe::load_model_config(kShared + "deepseek-v3.json").softmax_scale() - 0.1352338) < 1e-6);
        // Published sizes: V2-Lite 15.7B, V2 236B (21B activated), V3 671B (37B activated).
        QCOMPARE(std::llround(moe::load_model_config(kShared + "deepseek-v2-lite.json").total_params() / 1e8), 157LL);
        QCOMPARE(std::llround(moe::load_model_config(kShared + "deepseek-v2.json").total_params() / 1e9), 236LL);
        QCOMPARE(std::llround(moe::load_model_config(kShared + "deepseek-v2.json").activated_params() / 1e9), 21LL);
        QCOMPARE(std::llround(moe::load_model_config(kShared + "deepseek-v3.json").total_params() / 1e9), 671LL);
        QCOMPARE(std::llround(moe::load_model_config(kShared + "deepseek-v3.json").activated_params() / 1e9), 37LL);
    }
    void v2_v3_keys_are_checked_data() {
        QTest::addColumn<QString>("patch");
        QTest::addColumn<QString>("needle");
        QTest::newRow("unknown topk_method") << R"({"topk_method": "best"})" << "topk_method";
        QTest::newRow("v3 softmax") << R"({"scoring_func": "softmax"})" << "scoring_func";
        QTest::newRow("n_group not dividing") << R"({"n_group": 3})" << "n_group";
        QTest::newRow("topk_group > n_group") << R"({"topk_group": 9})" << "topk_group";
        QTest::newRow("odd rope dim") << R"({"qk_rope_head_dim": 63})" << "qk_rope_head_dim";
        QTest::newRow("missing kv_lora_rank") << R"({"kv_lora_rank": null})" << "kv_lora_rank";
        QTest::newRow("fp8 block 64") << R"({"quantization_config": {"quant_method": "fp8", "weight_block_size": [64, 64]}})"
                                      << "weight_block_size";
        QTest::newRow("int4") << R"({"quantization_config": {"quant_method": "gptq"}})" << "quantization_config";
        QTest::newRow("yarn without original") << R"({"rope_scaling": {"original_max_position_embeddings": null}})"
                                               << "original_max_position_embeddings";
        QTest::newRow("dynamic on mla") << R"({"rope_scaling": {"type": "dynamic", "factor": 4}})" << "yarn";
        QTest::newRow("zero scaling") << R"({"routed_scaling_factor": 0})" << "routed_scaling_factor";
    }
    void v2_v3_keys_are_checked() {
        QFETCH(QString, patch);
        QFETCH(QString, needle);
        const std::string path = kShared + "deepseek-v3.json";
        if (!std::filesystem::exists(path)) QSKIP("../shared/configs is not beside this checkout");
        std::ifstream in(path);
        nlohmann::json j = nlohmann::json::parse(in);
        j.merge_patch(nlohmann::json::parse(patch.toStdString()));
        try {
            moe::parse_model_config(j.dump(), "patched-v3");
            QFAIL("accepted");
        } catch (const moe::Error& e) {
            QCOMPARE(e.kind(), moe::ErrorKind::input);
            QVERIFY2(QString(e.what()).contains(needle), e.what());
        }
    }
};

QTEST_APPLESS_MAIN(ConfigTest)
#include "test_config.moc"
