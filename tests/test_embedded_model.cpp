// The embedded default model (resources/models/default): it loads, its tokenizer and config
// are what the model card says, and the engine's test loss on the small fixed slice of every
// domain matches the value the training script computed and committed in test_loss.json
// (tools/train/evaluate.py's protocol: the first test documents joined by blank lines until at
// least max_tokens tokens, encoded with BOS, in windows of the training context).
#include <QtTest>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "analysis/corpus.h"
#include "engine/evaluate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tests/test_support.h"

namespace {

const std::string kModel = std::string(MOE_SOURCE_DIR) + "/resources/models/default";
const std::string kDatasets = std::string(MOE_SOURCE_DIR) + "/datasets";

}  // namespace

class EmbeddedModelTest : public QObject {
    Q_OBJECT
private slots:
    void loads_with_the_published_architecture() {
        if (!std::filesystem::exists(kModel + "/model.safetensors")) QSKIP("resources/models/default is not in this checkout");
        auto model = moe::load_model(kModel);
        const moe::ModelConfig& c = model->config();
        QCOMPARE(c.model_type, std::string("deepseek"));
        QCOMPARE(c.n_routed_experts, int64_t(64));
        QCOMPARE(c.n_shared_experts, int64_t(2));
        QCOMPARE(c.num_experts_per_tok, int64_t(6));
        QCOMPARE(c.first_k_dense_replace, int64_t(1));
        QVERIFY(!c.norm_topk_prob);
        QCOMPARE(model->dtype_summary(), std::string("BF16"));
        QVERIFY(std::filesystem::file_size(kModel + "/model.safetensors") < 40u * 1000 * 1000);
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(kModel);
        QCOMPARE(static_cast<int64_t>(tok.vocab_size()), c.vocab_size);
    }
    void slice_loss_matches_the_training_script() {
        if (!std::filesystem::exists(kModel + "/model.safetensors")) QSKIP("resources/models/default is not in this checkout");
        const nlohmann::json tl = test_support::read_json(kModel + "/test_loss.json");
        const int64_t context = tl["context"].get<int64_t>();
        const int64_t max_tokens = tl["slice"]["max_tokens"].get<int64_t>();
        moe::LoadOptions lo;
        lo.threads = 2;
        auto model = moe::load_model(kModel, lo);
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(kModel);
        const size_t sep = tok.encode("\n\n", false).size();
        const moe::analysis::Corpus corpus = moe::analysis::open_corpus(kDatasets, "test", std::nullopt);
        int checked = 0;
        for (const auto& [domain, expected] : tl["slice"]["domains"].items()) {
            const moe::analysis::CorpusDomain* d = nullptr;
            for (const auto& cd : corpus.domains)
                if (cd.name == domain) d = &cd;
            if (!d) {
                QVERIFY2(domain == "gsm8k", domain.c_str());  // only the external domain may be absent
                continue;
            }
            // The protocol's text: first documents until the count reaches max_tokens.
            const auto docs = moe::analysis::read_documents(*d);
            size_t count = 1, n = 0;
            for (const auto& doc : docs) {
                ++n;
                count += tok.encode(doc.text, false).size() + (n > 1 ? sep : 0);
                if (count >= static_cast<size_t>(max_tokens)) break;
            }
            std::string text;
            for (size_t i = 0; i < n; ++i) text += (i ? "\n\n" : "") + docs[i].text;
            const std::vector<int32_t> ids = tok.encode(text);
            QCOMPARE(static_cast<int64_t>(ids.size()), expected["tokens"].get<int64_t>());
            const moe::EvalResult r = moe::evaluate_loss(*model, ids, context, nullptr);
            QCOMPARE(r.predicted, expected["predicted"].get<int64_t>());
            const double want = expected["loss"].get<double>();
            const double rel = std::abs(r.mean_loss() - want) / want;
            qInfo("%s: engine %.5f, script %.5f (%.4f %%)", domain.c_str(), r.mean_loss(), want, 100 * rel);
            QVERIFY2(rel <= 0.005, domain.c_str());
            ++checked;
        }
        QVERIFY(checked >= 5);
    }
};

QTEST_GUILESS_MAIN(EmbeddedModelTest)
#include "test_embedded_model.moc"
