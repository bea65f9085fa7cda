// moewb tokenize / detokenize end to end: runs the built binary on the small DeepSeek-LLM-style
// fixture and compares with the library; usage and input errors must exit 2 with a message.
#include <QProcess>
#include <QtTest>

#include <nlohmann/json.hpp>

#include "engine/tokenizer.h"
#include "tests/process_support.h"

namespace {

const QString kFixture = QString(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers/tiny-llm";

using Run = test_support::ProcessRun;

Run moewb(const QStringList& args, const QByteArray& input = {}) {
    return test_support::run_process(MOEWB_PATH, args, 60000, input);
}

std::vector<int32_t> ids_of(const QByteArray& out) { return nlohmann::json::parse(out.toStdString()).get<std::vector<int32_t>>(); }

}  // namespace

class TestTokenizerCli : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void tokenize_text_and_stdin();
    void detokenize();
    void errors_exit_2();
};

void TestTokenizerCli::initTestCase() {
    if (!QFileInfo::exists(MOEWB_PATH)) QSKIP("moewb is not built (build the moewb target)");
}

void TestTokenizerCli::tokenize_text_and_stdin() {
    const moe::Tokenizer tok = moe::Tokenizer::load_dir(kFixture.toStdString());
    const std::string text = "Hello, 世界! 123\n  <｜end▁of▁sentence｜>";
    Run r = moewb({"tokenize", "--model", kFixture, "--text", QString::fromStdString(text)});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.endsWith("]\n"));
    QCOMPARE(ids_of(r.out), tok.encode(text, true));
    r = moewb({"tokenize", "--tokenizer", kFixture + "/tokenizer.json", "--no-special"}, QByteArray::fromStdString(text));
    QCOMPARE(r.code, 0);
    QCOMPARE(ids_of(r.out), tok.encode(text, false));
    r = moewb({"tokenize", "--model", kFixture}, QByteArray());
    QCOMPARE(ids_of(r.out), (std::vector<int32_t>{*tok.bos_id()}));
}

void TestTokenizerCli::detokenize() {
    const moe::Tokenizer tok = moe::Tokenizer::load_dir(kFixture.toStdString());
    const std::string text = "Grüße\n\tfrom 混合专家";
    const auto ids = tok.encode(text, true);
    QString list;
    for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + QString::number(ids[i]);
    Run r = moewb({"detokenize", "--model", kFixture, "--ids", list, "--skip-special"});
    QCOMPARE(r.code, 0);
    QCOMPARE(r.out.toStdString(), text);
    r = moewb({"detokenize", "--model", kFixture, "--ids", list});
    QCOMPARE(r.out.toStdString(), "<｜begin▁of▁sentence｜>" + text);
}

void TestTokenizerCli::errors_exit_2() {
    Run r = moewb({"tokenize", "--text", "x"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("--model"));
    r = moewb({"tokenize", "--model", "/nonexistent", "--text", "x"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("/nonexistent/tokenizer.json"));
    r = moewb({"tokenize", "--model", kFixture}, QByteArray("ok \xff bad"));
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("byte offset 3"));
    r = moewb({"detokenize", "--model", kFixture, "--ids", "1,99999"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("99999"));
    r = moewb({"detokenize", "--model", kFixture, "--ids", "1,x"});
    QCOMPARE(r.code, 2);
    r = moewb({"tokenize", "--model", kFixture, "--bogus"});
    QCOMPARE(r.code, 2);
}

QTEST_GUILESS_MAIN(TestTokenizerCli)
#include "test_tokenizer_cli.moc"
