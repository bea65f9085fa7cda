// The moewb CLI on damaged model directories and bad arguments: exit code 2, a message on
// stderr that names the problem, nothing on stdout, never a crash.
#include <QProcess>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/expert_mask.h"
#include "tests/checkpoint_damage.h"
#include "tests/process_support.h"
#ifdef MOE_HAVE_CUDA
#include "engine/cuda/device.h"
#endif

class CliErrorTest : public QObject {
    Q_OBJECT
private slots:
    void cli_exits_2_data();
    void cli_exits_2();
    void make_random_never_overwrites_weights();
    void mask_file_is_the_saved_mask();
    void logits_of_a_damaged_checkpoint_stay_json();
};

void CliErrorTest::cli_exits_2_data() {
    QTest::addColumn<QString>("fixture");
    QTest::addColumn<QString>(
        "damage");  // none | truncated | deepseek_v2 | missing_shard | wrong_shape | foreign_tokenizer | huge
    QTest::addColumn<QStringList>("args");  // DIR stands for the damaged copy
    QTest::addColumn<QString>("needle");
    const QString s = "f32_single";
    const QStringList logits{"logits", "--model", "DIR"};
    QTest::newRow("ids not numbers") << s << "none" << logits + QStringList{"--ids", "1,x"} << "'x'";
    QTest::newRow("empty ids") << s << "none" << logits + QStringList{"--ids", ""} << "--ids";
    QTest::newRow("unknown flag") << s << "none" << logits + QStringList{"--ids", "1", "--frobnicate"}
                                  << "--frobnicate";
    QTest::newRow("missing --model") << s << "none" << QStringList{"logits", "--ids", "1"} << "--model";
    QTest::newRow("--ids without value") << s << "none" << logits + QStringList{"--ids"} << "--ids";
    QTest::newRow("--threads 0") << s << "none" << logits + QStringList{"--ids", "1", "--threads", "0"}
                                 << "--threads";
    QTest::newRow("bad --backend") << s << "none" << logits + QStringList{"--ids", "1", "--backend", "tpu"} << "tpu";
    QTest::newRow("bad --activations") << s << "none" << logits + QStringList{"--ids", "1", "--activations", "fast"}
                                       << "expected exact or bf16";
#ifndef MOE_HAVE_CUDA
    QTest::newRow("--backend cuda, no CUDA in the build") << s << "none" << logits + QStringList{"--ids", "1", "--backend", "cuda"}
                                                          << "no CUDA backend";
#else
    if (!moe::cuda::first_device())
        QTest::newRow("--backend cuda, no device") << s << "none" << logits + QStringList{"--ids", "1", "--backend", "cuda"}
                                                   << "no CUDA device";
#endif
    QTest::newRow("id out of range") << s << "none" << logits + QStringList{"--ids", "1,500"} << "500";
    QTest::newRow("bad --mask") << s << "none" << logits + QStringList{"--ids", "1", "--mask", "L0:1"} << "dense";
    QTest::newRow("bad --mask-mode") << s << "none" << logits + QStringList{"--ids", "1", "--mask-mode", "sideways"}
                                     << "sideways";
    QTest::newRow("unknown command") << s << "none" << QStringList{"frobnicate"} << "frobnicate";
    QTest::newRow("model dir does not exist") << s << "none" << QStringList{"info", "--model", "DIR/nowhere"}
                                              << "nowhere";
    QTest::newRow("logits: truncated safetensors") << s << "truncated" << logits + QStringList{"--ids", "1"}
                                                   << kSingle;
    QTest::newRow("info: truncated safetensors") << s << "truncated" << QStringList{"info", "--model", "DIR"}
                                                 << kSingle;
    QTest::newRow("logits: deepseek_v2 config") << s << "deepseek_v2" << logits + QStringList{"--ids", "1"}
                                                << "kv_lora_rank";
    QTest::newRow("logits: wrong shape") << s << "wrong_shape" << logits + QStringList{"--ids", "1"}
                                         << "expected [96, 48]";
    const QStringList generate{"generate", "--model", "DIR", "--prompt", "Hello", "--max-new-tokens", "2"};
    QTest::newRow("generate: another model's tokenizer") << s << "foreign_tokenizer" << generate << "tokenizer.json: tokenizer has 100015 tokens";
    QTest::newRow("eval: another model's tokenizer") << s << "foreign_tokenizer"
                                                     << QStringList{"eval", "--model", "DIR", "--text", "DIR/config.json"}
                                                     << "tokenizer.json: tokenizer has 100015 tokens";
    // Random weights larger than any machine's memory (1024 layers of 1024 experts 1M wide):
    // refused with the numbers before anything is made or written, not killed by the kernel.
    QTest::newRow("bench: random weights beyond the host's memory")
        << s << "huge" << QStringList{"bench", "--random-config", "DIR/config.json"} << "of host memory";
    QTest::newRow("bench: --score of a one-token prompt")
        << s << "none" << QStringList{"bench", "--model", "DIR", "--prompt-tokens", "1", "--score"} << "--score";
    QTest::newRow("make-random: random weights beyond the host's memory")
        << s << "huge" << QStringList{"make-random", "--config", "DIR/config.json", "--out", "DIR/out"}
        << "of host memory";
    // A window of max_position_embeddings (1) predicts nothing: said, not an assertion.
    QTest::newRow("eval: max_position_embeddings 1")
        << s << "one_position" << QStringList{"eval", "--model", "DIR", "--ids", "1,2,3"}
        << "max_position_embeddings is 1";
    QTest::newRow("generate: empty --stop")
        << s << "none" << QStringList{"generate", "--model", "DIR", "--ids", "1", "--stop", ""} << "--stop";
    QTest::newRow("eval: one token") << s << "none" << QStringList{"eval", "--model", "DIR", "--ids", "7"} << "--ids";
    QTest::newRow("bench: --dtype of a model directory")
        << s << "none" << QStringList{"bench", "--model", "DIR", "--dtype", "bf16"} << "--random-config";
    QTest::newRow("logits: missing shard") << "f32_sharded_gqa" << "missing_shard"
                                           << logits + QStringList{"--ids", "1"} << kShard2;
}

void CliErrorTest::cli_exits_2() {
    QFETCH(QString, fixture);
    QFETCH(QString, damage);
    QFETCH(QStringList, args);
    QFETCH(QString, needle);
    const QString moewb = QStringLiteral(MOE_BINARY_DIR "/app/moewb");
    QVERIFY2(QFile::exists(moewb), qPrintable(moewb + " not built"));
    QTemporaryDir tmp;
    const QString dir = copy_fixture(tmp, fixture);
    QVERIFY(!dir.isEmpty());
    if (damage == "truncated") {
        const QByteArray bytes = read_file(dir + "/" + kSingle);
        QVERIFY(write_file(dir + "/" + kSingle, bytes.left(bytes.size() / 2)));
    } else if (damage == "deepseek_v2") {
        QVERIFY(set_config_value(dir, "model_type", "\"deepseek_v2\""));
    } else if (damage == "missing_shard") {
        QVERIFY(QFile::remove(dir + "/" + kShard2));
    } else if (damage == "foreign_tokenizer") {  // DeepSeek LLM's 100k tokenizer beside a model of 96 ids
        const QString from = QStringLiteral(MOE_SOURCE_DIR "/tests/fixtures/tokenizers/deepseek-llm/");
        QVERIFY(QFile::copy(from + "tokenizer.json", dir + "/tokenizer.json"));
        QVERIFY(QFile::copy(from + "tokenizer_config.json", dir + "/tokenizer_config.json"));
    } else if (damage == "huge") {
        QVERIFY(set_config_value(dir, "num_hidden_layers", "1024"));
        QVERIFY(set_config_value(dir, "n_routed_experts", "1024"));
        QVERIFY(set_config_value(dir, "moe_intermediate_size", "1048576"));
    } else if (damage == "one_position") {
        QVERIFY(set_config_value(dir, "max_position_embeddings", "1"));
    } else if (damage == "wrong_shape") {
        Safetensors st = Safetensors::read(dir + "/" + kSingle);
        st.header[kEmbed]["shape"] = {48, 96};
        QVERIFY(st.write(dir + "/" + kSingle));
    } else {
        QCOMPARE(damage, QString("none"));
    }
    for (QString& a : args) a.replace("DIR", dir);

    QProcess p;
    p.start(moewb, args);
    QVERIFY2(p.waitForFinished(60000), "moewb did not finish within 60 s");
    const QString out = QString::fromUtf8(p.readAllStandardOutput());
    const QString err = QString::fromUtf8(p.readAllStandardError());
    qInfo().noquote() << "stderr:" << err.trimmed();
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);  // no crash
    QCOMPARE(p.exitCode(), 2);
    QVERIFY2(out.isEmpty(), qPrintable("stdout: " + out.left(300)));
    QVERIFY2(err.contains("error") || err.contains("unknown"), qPrintable(err));
    QVERIFY2(err.contains(needle), qPrintable(err));
    QVERIFY(!QFileInfo::exists(dir + "/out"));  // nothing written
}

namespace {

// moewb's exit code and standard error.
struct Run {
    int code = -1;
    QString err;
};

Run run_moewb(const QStringList& args) {
    const test_support::ProcessRun r = test_support::run_moewb(args);
    return {r.code, QString::fromUtf8(r.err)};
}

}  // namespace

void CliErrorTest::make_random_never_overwrites_weights() {
    QTemporaryDir tmp;
    const QString model = copy_fixture(tmp, "f32_single");
    QVERIFY(!model.isEmpty());
    const QString config = model + "/config.json";
    const QByteArray trained = read_file(model + "/" + kSingle);
    QVERIFY(!trained.isEmpty());

    // A new directory: weights and the config written, and they load.
    const QString fresh = tmp.path() + "/random";
    Run r = run_moewb({"make-random", "--config", config, "--out", fresh, "--dtype", "f32", "--seed", "3"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QCOMPARE(read_file(fresh + "/config.json"), read_file(config));
    r = run_moewb({"info", "--model", fresh});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    const QByteArray seed3 = read_file(fresh + "/" + kSingle);

    // Again into it: refused, the weights untouched; --force replaces them.
    r = run_moewb({"make-random", "--config", config, "--out", fresh, "--dtype", "f32", "--seed", "4"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("already holds") && r.err.contains("--force"), qPrintable(r.err));
    QCOMPARE(read_file(fresh + "/" + kSingle), seed3);
    r = run_moewb({"make-random", "--config", config, "--out", fresh, "--dtype", "f32", "--seed", "4", "--force"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(read_file(fresh + "/" + kSingle) != seed3);

    // Into the config's own (trained) directory: refused; with --force the config stays itself.
    r = run_moewb({"make-random", "--config", config, "--out", model});
    QCOMPARE(r.code, 2);
    QCOMPARE(read_file(model + "/" + kSingle), trained);
    const QByteArray config_bytes = read_file(config);
    r = run_moewb({"make-random", "--config", config, "--out", model, "--force"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QCOMPARE(read_file(config), config_bytes);
    QVERIFY(read_file(model + "/" + kSingle) != trained);

    // A sharded checkpoint's directory: refused even with --force; a file as --out: refused.
    QTemporaryDir tmp2;
    const QString sharded = copy_fixture(tmp2, "f32_sharded_gqa");
    QVERIFY(!sharded.isEmpty());
    r = run_moewb({"make-random", "--config", config, "--out", sharded, "--force"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("another checkpoint"), qPrintable(r.err));
    QVERIFY(!QFile::exists(sharded + "/" + kSingle));
    r = run_moewb({"make-random", "--config", config, "--out", config});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("not a directory"), qPrintable(r.err));
}

void CliErrorTest::logits_of_a_damaged_checkpoint_stay_json() {
    // NaN in a checkpoint's embedding row: the logits and gate weights it leads to are not
    // numbers, and `moewb logits` writes them as JSON's null, never as a bare nan.
    QTemporaryDir tmp;
    const QString dir = copy_fixture(tmp, "f32_single");
    QVERIFY(!dir.isEmpty());
    Safetensors st = Safetensors::read(dir + "/" + kSingle);
    const qsizetype at = static_cast<qsizetype>(st.header[kEmbed]["data_offsets"][0].get<quint64>()) + 5 * 48 * 4;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int i = 0; i < 48; ++i) std::memcpy(st.data.data() + at + 4 * i, &nan, 4);  // row 5
    QVERIFY(st.write(dir + "/" + kSingle));
    const test_support::ProcessRun r = test_support::run_moewb({"logits", "--model", dir, "--ids", "5,6"});
    QVERIFY2(r.code == 0, r.err.constData());
    const auto j = nlohmann::json::parse(r.out.toStdString(), nullptr, false);
    QVERIFY2(!j.is_discarded(), r.out.left(200).constData());
    QVERIFY(j["logits"][0][0].is_null());
    QVERIFY(j["gate_weights"]["1"][0][0].is_null());
}

void CliErrorTest::mask_file_is_the_saved_mask() {
    // A mask saved by the workbench (docs/masks.md) gives the same logits as its SPEC and mode
    // typed out; --mask-mode overrides the file's mode; a bad file exits 2 naming it.
    QTemporaryDir tmp;
    const QString model = copy_fixture(tmp, "f32_single");
    QVERIFY(!model.isEmpty());
    const QString saved = tmp.filePath("mask.json");
    QVERIFY(write_file(saved, R"({"format": "moe-workbench-mask", "version": 1, "spec": "L1:3,5;*:shared", )"
                              R"("mode": "drop", "model": "f32_single"})"));
    const QStringList logits{"logits", "--model", model, "--ids", "1,2,3"};
    const test_support::ProcessRun typed = test_support::run_moewb(logits + QStringList{"--mask", "L1:3,5;*:shared", "--mask-mode", "drop"});
    QCOMPARE(typed.code, 0);
    const test_support::ProcessRun from_file = test_support::run_moewb(logits + QStringList{"--mask-file", saved});
    QCOMPARE(from_file.code, 0);
    QCOMPARE(from_file.out, typed.out);
    const test_support::ProcessRun plain = test_support::run_moewb(logits);
    QVERIFY(plain.out != typed.out);
    const test_support::ProcessRun reroute = test_support::run_moewb(logits + QStringList{"--mask-file", saved, "--mask-mode", "reroute"});
    const test_support::ProcessRun typed_reroute = test_support::run_moewb(logits + QStringList{"--mask", "L1:3,5;*:shared"});
    QCOMPARE(reroute.code, 0);
    QCOMPARE(reroute.out, typed_reroute.out);
    QVERIFY(reroute.out != typed.out);
    // The workbench's own writer reads back to the same SPEC and mode.
    const moe::SavedMask back = moe::parse_saved_mask(moe::saved_mask_json("L1:3;*:k=2", moe::MaskMode::drop, "m"), "x");
    QCOMPARE(back.spec, std::string("L1:3;*:k=2"));
    QVERIFY(back.mode == moe::MaskMode::drop);

    const QString not_json = tmp.filePath("not-json.json"), other = tmp.filePath("other.json"), dense = tmp.filePath("dense.json");
    QVERIFY(write_file(not_json, "L1:3"));
    QVERIFY(write_file(other, R"({"format": "something-else", "spec": "L1:3"})"));
    QVERIFY(write_file(dense, R"({"spec": "L0:3"})"));
    const QList<QPair<QStringList, QString>> bad{
        {{"--mask-file", not_json}, "not-json.json: is not JSON"},
        {{"--mask-file", other}, "other.json: is not a saved mask"},
        {{"--mask-file", dense}, "dense.json: mask part 'L0:3'"},
        {{"--mask-file", tmp.filePath("nowhere.json")}, "nowhere.json: cannot open"},
        {{"--mask-file", tmp.path()}, "is a directory"},
        {{"--mask-file", saved, "--mask", "L1:3"}, "not both"},
    };
    for (const auto& [extra, needle] : bad) {
        const Run r = run_moewb(logits + extra);
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains(needle), qPrintable(r.err));
    }
    const Run ablate = run_moewb({"ablate", "--model", model, "--corpus", saved, "--mask-file", saved, "--sweep", "k"});
    QCOMPARE(ablate.code, 2);
    QVERIFY2(ablate.err.contains("exactly one of --mask SPEC (or --mask-file FILE) or --sweep"), qPrintable(ablate.err));
}

QTEST_GUILESS_MAIN(CliErrorTest)
#include "test_cli_errors.moc"
