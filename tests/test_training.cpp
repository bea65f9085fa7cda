// The training tools (tools/train/) end to end on a miniature model: trains a tiny tokenizer on a
// synthetic three-domain corpus written here, trains tools/train/shapes/tiny.json for a few steps
// with /usr/bin/python3 (Debian's python3-torch), and checks that the engine loads the export,
// tokenizes like the Python encoder the model was trained with, and reproduces the script's own
// per-domain test loss within 0.5 %; also that an interrupted and resumed run exports the same
// bytes. Skipped (with the reason) when python3 or torch is missing. Not a check of model quality.
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/evaluate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tests/python_support.h"
#include "tests/test_support.h"

namespace {

using nlohmann::json;
using test_support::read_json;
using test_support::read_text;

const std::vector<std::string> kDomains = {"arith", "hanzi", "prose"};
constexpr int kSteps = 40;
constexpr int kSeqLen = 64;

using test_support::kPython;
using test_support::PythonRun;
using test_support::run_python;

QString script(const char* name) { return QString(MOE_SOURCE_DIR) + "/tools/train/" + name; }

// Deterministic pseudo-random text, so the corpus needs no files.
using test_support::Lcg;

std::string make_document(const std::string& domain, Lcg& r) {
    static const std::vector<std::string> words = {
        "the", "river", "a", "house", "of", "light", "and", "she", "walked", "slowly", "towards", "garden",
        "morning", "letter", "was", "written", "by", "her", "sister", "in", "winter", "they", "said", "nothing",
        "about", "it", "old", "friend", "window", "rain", "quiet", "evening"};
    static const std::vector<std::string> names = {"Tom", "Anna", "Lee", "Maria", "Sam"};
    static const std::vector<std::string> things = {"apples", "books", "coins", "pencils", "cards"};
    static const std::vector<std::string> hanzi = {"我", "们", "的", "是", "在", "有", "这", "个", "中", "国", "人",
                                                   "大", "学", "生", "时", "候", "文", "档", "内", "核", "模", "块"};
    std::string doc;
    if (domain == "prose") {
        for (int s = 0; s < 6; ++s) {
            std::string sentence;
            const int n = 6 + static_cast<int>(r.next(8));
            for (int i = 0; i < n; ++i) sentence += (i ? " " : "") + words[r.next(words.size())];
            sentence[0] = static_cast<char>(sentence[0] - 'a' + 'A');
            doc += sentence + (r.next(4) == 0 ? "!" : ".") + (s < 5 ? " " : "");
        }
    } else if (domain == "arith") {
        const uint32_t a = 2 + r.next(90), b = 2 + r.next(90);
        const std::string who = names[r.next(names.size())], what = things[r.next(things.size())];
        doc = who + " has " + std::to_string(a) + " " + what + " and gets " + std::to_string(b) +
              " more. How many " + what + " does " + who + " have now?\n" + who + " has " + std::to_string(a) +
              "+" + std::to_string(b) + " = <<" + std::to_string(a) + "+" + std::to_string(b) + "=" +
              std::to_string(a + b) + ">>" + std::to_string(a + b) + " " + what + ".\n#### " + std::to_string(a + b);
    } else {
        for (int s = 0; s < 5; ++s) {
            const int n = 8 + static_cast<int>(r.next(12));
            for (int i = 0; i < n; ++i) doc += hanzi[r.next(hanzi.size())];
            doc += s < 4 ? "，" : "。";
        }
    }
    return doc;
}

// datasets/<domain>/{train,validation,test}.jsonl, the corpus format of tools/train/domains.py.
void write_corpus(const std::string& dir) {
    const std::vector<std::pair<std::string, int>> splits = {{"train", 400}, {"validation", 20}, {"test", 40}};
    Lcg r{20240607};
    for (const std::string& d : kDomains) {
        std::filesystem::create_directories(dir + "/" + d);
        for (const auto& [split, n] : splits) {
            std::ofstream out(dir + "/" + d + "/" + split + ".jsonl", std::ios::binary);
            for (int i = 0; i < n; ++i)
                out << json{{"id", d + "-" + split + "-" + std::to_string(i)}, {"text", make_document(d, r)}}.dump()
                    << "\n";
        }
    }
}

}  // namespace

class TestTraining : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void engine_tokenizes_like_the_python_encoder();
    void engine_reproduces_the_script_test_loss();
    void resumed_run_exports_the_same_weights();
    void log_has_losses_loads_and_validation();
    void config_has_the_published_keys();

private:
    QTemporaryDir tmp_;
    std::string dir_;
    QStringList train_args(const QString& out) const;
};

QStringList TestTraining::train_args(const QString& out) const {
    const QString d = QString::fromStdString(dir_);
    return {script("train.py"), "--shape", script("shapes/tiny.json"), "--tokenizer", d + "/tokenizer",
            "--datasets", d + "/datasets", "--gsm8k", "", "--out", out, "--steps", QString::number(kSteps),
            "--seq-len", QString::number(kSeqLen), "--batch-per-domain", "2", "--warmup", "5", "--log-every", "5",
            "--load-every", "10", "--eval-every", "20", "--val-tokens", "512", "--test-tokens", "1000",
            "--slice-tokens", "200", "--threads", "1", "--quiet"};
}

void TestTraining::initTestCase() {
    if (!QFileInfo::exists(kPython)) QSKIP("no /usr/bin/python3: the training tools need Debian's python3");
    const PythonRun probe = run_python({"-c", "import torch, numpy"});
    if (probe.code != 0)
        QSKIP(qPrintable("/usr/bin/python3 cannot import torch and numpy (install Debian's python3-torch): " +
                         QString::fromUtf8(probe.err).trimmed().split('\n').last()));
    QVERIFY(tmp_.isValid());
    dir_ = tmp_.path().toStdString();
    write_corpus(dir_ + "/datasets");
    const QString d = QString::fromStdString(dir_);

    PythonRun r = run_python({script("train_tokenizer.py"), "--out", d + "/tokenizer", "--vocab-size", "400", "--datasets",
                    d + "/datasets", "--gsm8k", "", "--quiet"});
    QVERIFY2(r.code == 0, r.err.constData());
    // One uninterrupted run with export and the test texts ...
    r = run_python(train_args(d + "/run") + QStringList{"--export", d + "/model", "--eval-text-dir", d + "/texts"});
    QVERIFY2(r.code == 0, r.err.constData());
    // ... and one interrupted half way, then resumed from its checkpoint.
    r = run_python(train_args(d + "/run2") + QStringList{"--stop-after", QString::number(kSteps / 2)});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY(!QFileInfo::exists(d + "/model2/model.safetensors"));
    r = run_python(train_args(d + "/run2") + QStringList{"--export", d + "/model2", "--resume"});
    QVERIFY2(r.code == 0, r.err.constData());
}

void TestTraining::engine_tokenizes_like_the_python_encoder() {
    const moe::Tokenizer tok = moe::Tokenizer::load_dir(dir_ + "/model");
    QCOMPARE(tok.vocab_size(), 400);
    QCOMPARE(tok.bos_id().value_or(-1), 398);
    QCOMPARE(tok.eos_id().value_or(-1), 399);
    std::vector<std::string> texts;
    for (const std::string& d : kDomains) texts.push_back(read_text(dir_ + "/texts/" + d + ".test.txt"));
    texts.push_back("Hello  world 12345\n\n  tabs\tand üñíçødé, 中文！ <｜end▁of▁sentence｜> end ");
    json input = texts;
    const std::string code =
        "import json, sys; sys.path.insert(0, 'tools/train'); from byte_level_bpe import Encoder; "
        "e = Encoder(sys.argv[1]); print(json.dumps([e.encode(t) for t in json.loads(sys.argv[2])]))";
    const PythonRun r = run_python({"-c", QString::fromStdString(code), QString::fromStdString(dir_ + "/model/tokenizer.json"),
                          QString::fromStdString(input.dump())});
    QVERIFY2(r.code == 0, r.err.constData());
    const json expected = json::parse(r.out.toStdString());
    QCOMPARE(expected.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<int32_t> ids = tok.encode(texts[i]);
        QCOMPARE(ids, expected[i].get<std::vector<int32_t>>());
    }
}

void TestTraining::engine_reproduces_the_script_test_loss() {
    const json result = read_json(dir_ + "/model/test_loss.json");
    QCOMPARE(result["context"].get<int>(), kSeqLen);
    const auto model = moe::load_model(dir_ + "/model");
    QCOMPARE(model->dtype_summary(), std::string("BF16"));
    const moe::Tokenizer tok = moe::Tokenizer::load_dir(dir_ + "/model");
    for (const std::string& d : kDomains) {
        const json& expected = result["test"]["domains"][d];
        const std::vector<int32_t> ids = tok.encode(read_text(dir_ + "/texts/" + d + ".test.txt"));
        QCOMPARE(static_cast<int64_t>(ids.size()), expected["tokens"].get<int64_t>());
        QVERIFY(ids.size() >= 1000);
        const moe::EvalResult r = moe::evaluate_loss(*model, ids, kSeqLen, nullptr);
        QCOMPARE(r.predicted, expected["predicted"].get<int64_t>());
        const double script_loss = expected["loss"].get<double>();
        const double rel = std::abs(r.mean_loss() - script_loss) / script_loss;
        QVERIFY2(rel <= 0.005, qPrintable(QString("%1: engine %2, script %3").arg(d.c_str())
                                              .arg(r.mean_loss()).arg(script_loss)));
    }
}

void TestTraining::resumed_run_exports_the_same_weights() {
    const std::string a = read_text(dir_ + "/model/model.safetensors");
    const std::string b = read_text(dir_ + "/model2/model.safetensors");
    QVERIFY(!a.empty());
    QVERIFY2(a == b, "the interrupted + resumed run must train exactly like the uninterrupted one");
}

void TestTraining::log_has_losses_loads_and_validation() {
    std::ifstream in(dir_ + "/run/log.jsonl");
    std::string line;
    int train = 0, loads = 0;
    std::vector<double> validation;
    while (std::getline(in, line)) {
        const json rec = json::parse(line);
        const std::string type = rec["type"];
        if (type == "train") {
            ++train;
            for (const std::string& d : kDomains) QVERIFY(rec["loss_by_domain"].contains(d));
            QVERIFY(rec["balance_loss"].get<double>() > 0);
            QVERIFY(rec["tokens_per_s"].get<double>() > 0);
        } else if (type == "expert_load") {
            ++loads;
            // tiny.json: layer 0 dense, layer 1 MoE with 8 experts, top-2.
            const std::vector<int64_t> counts = rec["counts"]["1"];
            QCOMPARE(counts.size(), size_t{8});
            int64_t total = 0;
            for (int64_t c : counts) total += c;
            QCOMPARE(total, int64_t{rec["steps"].get<int64_t>() * 3 * 2 * kSeqLen * 2});
        } else if (type == "validation") {
            double mean = 0;
            for (const std::string& d : kDomains) mean += rec["loss_by_domain"][d].get<double>() / 3;
            validation.push_back(mean);
        }
    }
    QCOMPARE(train, kSteps / 5);
    QCOMPARE(loads, kSteps / 10);
    QVERIFY(validation.size() >= 2);
    QVERIFY2(validation.back() < validation.front() - 0.5, "validation loss should fall while training");
}

void TestTraining::config_has_the_published_keys() {
    // The keys of deepseek-moe-16b-base's config.json.
    const std::set<std::string> expected = {
        "architectures", "attention_bias", "attention_dropout", "auto_map", "aux_loss_alpha", "bos_token_id",
        "eos_token_id", "first_k_dense_replace", "hidden_act", "hidden_size", "initializer_range",
        "intermediate_size", "max_position_embeddings", "model_type", "moe_intermediate_size", "moe_layer_freq",
        "n_routed_experts", "n_shared_experts", "norm_topk_prob", "num_attention_heads", "num_experts_per_tok",
        "num_hidden_layers", "num_key_value_heads", "pretraining_tp", "rms_norm_eps", "rope_scaling", "rope_theta",
        "scoring_func", "seq_aux", "tie_word_embeddings", "torch_dtype", "transformers_version", "use_cache",
        "vocab_size"};
    const json cfg = read_json(dir_ + "/model/config.json");
    std::set<std::string> keys;
    for (const auto& [k, v] : cfg.items()) keys.insert(k);
    QCOMPARE(keys, expected);
    QCOMPARE(cfg["model_type"].get<std::string>(), std::string("deepseek"));
    QCOMPARE(cfg["bos_token_id"].get<int>(), 398);
    QCOMPARE(cfg["torch_dtype"].get<std::string>(), std::string("bfloat16"));
}

QTEST_GUILESS_MAIN(TestTraining)
#include "test_training.moc"
