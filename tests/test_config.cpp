// config.json reading on the published DeepSeekMoE 16B config (../shared/configs beside the
// checkout): which layers are MoE, and parameter counts against the published figures
// (16.4 B total, 2.8 B activated of which 0.21 B is the embedding table — model-spec.md §1).
#include <QtTest>

#include <filesystem>

#include "engine/error.h"
#include "engine/model_config.h"

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
    void moe_layer_frequency() {
        const auto c = moe::parse_model_config(R"({"model_type":"deepseek","vocab_size":8,"hidden_size":8,
            "intermediate_size":8,"moe_intermediate_size":4,"num_hidden_layers":6,"num_attention_heads":2,
            "n_routed_experts":4,"num_experts_per_tok":2,"first_k_dense_replace":1,"moe_layer_freq":2})", "cfg");
        QVERIFY(!c.is_moe_layer(0) && !c.is_moe_layer(1) && c.is_moe_layer(2) && !c.is_moe_layer(3) && c.is_moe_layer(4));
        QCOMPARE(c.n_shared_experts, int64_t(0));
        QCOMPARE(c.num_key_value_heads, int64_t(2));
    }
    void later_generations_are_refused_clearly() {
        for (const char* f : {"deepseek-v2-lite.json", "deepseek-v3.json"}) {
            const std::string path = kShared + f;
            if (!std::filesystem::exists(path)) QSKIP("../shared/configs is not beside this checkout");
            try {
                moe::load_model_config(path);
                QFAIL("accepted");
            } catch (const moe::Error& e) {
                QCOMPARE(e.kind(), moe::ErrorKind::input);
                QVERIFY2(QString(e.what()).contains("not supported"), e.what());
            }
        }
    }
};

QTEST_APPLESS_MAIN(ConfigTest)
#include "test_config.moc"
