// The chat panel talking to a server, on the offscreen platform: the stand-in SGLang / vLLM
// server (tests/capture_server.py) streams an OpenAI-compatible chat answer (server-sent
// events) that appears in the transcript piece by piece; after it, the panel sends the
// conversation's token ids (the model directory's chat template + the answer, tokenized
// here) to the engine's routing endpoint and hands the decoded routing to the inspector —
// equal, token by token and layer by layer, to the payload the server wrote. Stop aborts a
// long answer; a server without --enable-return-routed-experts, an unknown served model and
// an unreachable server are errors shown in the panel's status.
#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QProcess>
#include <QPushButton>
#include <QSignalSpy>
#include <QtTest>

#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tests/ui_test_support.h"
#include "ui/chat_panel.h"

using namespace moe::ui;

namespace {
const QString kServer = QStringLiteral(MOE_SOURCE_DIR "/tests/capture_server.py");
const QString kAnswer = QStringLiteral("The stand-in server answers: experts route every token");  // 8 pieces
}  // namespace

class TestUiChatServer : public QObject {
    Q_OBJECT
    ui_test::Fixture fx_;
    Workbench wb_;
    ChatPanel* panel_ = nullptr;
    QProcess* server_ = nullptr;
    QString routing_log_;
    int case_ = 0;
    std::vector<TokenRouting> inspected_;

    // Starts the stand-in server for the fixture model's config; returns its URL.
    QString start(const QString& engine, const QStringList& extra = {}) {
        const QString dir = fx_.tmp.filePath(QString("server%1").arg(++case_));
        QDir().mkpath(dir);
        const QString port_file = dir + "/port";
        routing_log_ = dir + "/routing.jsonl";
        server_ = new QProcess(this);
        server_->setProcessChannelMode(QProcess::ForwardedErrorChannel);
        server_->start("/usr/bin/python3", QStringList{kServer, "--engine", engine, "--config", fx_.model_dir + "/config.json",
                                                       "--port-file", port_file, "--routing-log", routing_log_} +
                                               extra);
        for (int i = 0; i < 300 && !QFile::exists(port_file); ++i) QTest::qWait(50);
        QFile f(port_file);
        if (!f.open(QIODevice::ReadOnly)) return {};
        return "http://127.0.0.1:" + QString::fromUtf8(f.readAll()).trimmed();
    }
    void type_and_send(const QString& text) {
        auto* input = panel_->findChild<QLineEdit*>("chatInput");
        input->setFocus();
        QTest::keyClicks(input, text);
        QTest::mouseClick(panel_->findChild<QPushButton*>("chatSend"), Qt::LeftButton);
    }
    // The last routing answer the server wrote: its prompt ids and ids[t][moe layer][k].
    QJsonObject last_routing_payload() {
        QFile f(routing_log_);
        if (!f.open(QIODevice::ReadOnly)) return {};
        const QList<QByteArray> lines = f.readAll().trimmed().split('\n');
        return QJsonDocument::fromJson(lines.last()).object();
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        if (!QFile::exists("/usr/bin/python3")) QSKIP("needs /usr/bin/python3 with NumPy for the stand-in server");
        QProcess np;
        np.start("/usr/bin/python3", {"-c", "import numpy"});
        QVERIFY(np.waitForFinished(30000));
        if (np.exitCode() != 0) QSKIP("needs python3-numpy for the stand-in server");
        QVERIFY(fx_.ok);
        QVERIFY(ui_test::open_all(wb_, fx_));
        panel_ = new ChatPanel(&wb_);
        panel_->resize(700, 600);
        panel_->show();
        connect(panel_, &ChatPanel::inspectRequested, this, [this](const TokenRouting& r) { inspected_.push_back(r); });
    }
    void cleanup() {
        if (server_) {
            server_->kill();
            server_->waitForFinished(5000);
            delete server_;
            server_ = nullptr;
        }
        QVERIFY(panel_->session()->waitIdle(30000));
        panel_->findChild<QPushButton*>("chatClear")->click();
        inspected_.clear();
    }
    void cleanupTestCase() { delete panel_; }

    void streamsTheAnswerAndShowsTheServersRouting_data() {
        QTest::addColumn<QString>("engine");
        QTest::addColumn<QString>("layout");
        QTest::newRow("sglang") << "sglang" << "absolute";
        QTest::newRow("vllm absolute") << "vllm" << "absolute";
        QTest::newRow("vllm moe-ordinal") << "vllm" << "moe";
    }
    void streamsTheAnswerAndShowsTheServersRouting() {
        QFETCH(QString, engine);
        QFETCH(QString, layout);
        const QString url = start(engine, {"--layout", layout});
        QVERIFY(!url.isEmpty());
        panel_->setServer(url, engine, "test-model");
        panel_->setMaxTokens(8);
        QSignalSpy streamed(panel_->session(), &ChatSession::textStreamed);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Hello server");
        QVERIFY(panel_->session()->running());
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 30000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        // The pieces, in order, shown as they came: at most one event per 33 ms, so a fast
        // server's 8 pieces may come in fewer.
        QString shown;
        for (const auto& e : streamed) shown += e[0].toString();
        QCOMPARE(shown, kAnswer);
        QVERIFY(streamed.size() >= 1 && streamed.size() <= 8);
        QCOMPARE(panel_->session()->piecesReceived(), 8);
        QCOMPARE(panel_->session()->partialAnswer(), kAnswer);
        QVERIFY2(panel_->transcript().contains("You: Hello server"), qPrintable(panel_->transcript()));
        QVERIFY2(panel_->transcript().contains("Model: " + kAnswer), qPrintable(panel_->transcript()));
        QVERIFY(panel_->session()->lastFromServer());
        QCOMPARE(panel_->session()->messages().size(), size_t(2));
        QCOMPARE(panel_->session()->lastResult()->stop_reason, std::string("max_new_tokens"));

        // The inspector got the routing, once, without having to ask.
        QCOMPARE(inspected_.size(), size_t(1));
        const TokenRouting r = inspected_[0];  // a copy: the next answer grows the vector
        // The ids sent: the chat template's prompt and the answer, tokenized here.
        const moe::ChatTemplate tmpl = moe::chat_template_for(fx_.model_dir.toStdString(), wb_.model()->config());
        std::vector<int32_t> want = wb_.tokenizer()->encode(moe::render_chat(tmpl, {{"user", "Hello server"}}, true), false);
        const std::vector<int32_t> answer = wb_.tokenizer()->encode(kAnswer.toStdString(), false);
        want.insert(want.end(), answer.begin(), answer.end());
        QCOMPARE(r.token_ids, want);
        QVERIFY(!r.has_gate_weights());
        // Equal to the payload: every token, MoE layer and rank.
        const QJsonObject payload = last_routing_payload();
        QJsonArray sent = payload["prompt_ids"].toArray();
        QCOMPARE(sent.size(), static_cast<qsizetype>(want.size()));
        for (qsizetype i = 0; i < sent.size(); ++i) QCOMPARE(sent[i].toInt(), want[static_cast<size_t>(i)]);
        const QJsonArray moe_layers = payload["moe_layers"].toArray();
        const QJsonArray ids = payload["ids"].toArray();
        QCOMPARE(ids.size(), static_cast<qsizetype>(r.n_tokens()));  // prompt + 1 − 1 rows
        QCOMPARE(r.n_layers(), static_cast<int64_t>(moe_layers.size()));
        const auto& cfg = wb_.model()->config();
        QCOMPARE(r.k, cfg.num_experts_per_tok);
        for (qsizetype m = 0; m < moe_layers.size(); ++m) {
            const int64_t col = r.column_of_layer(moe_layers[m].toInt());
            QVERIFY(col >= 0);
            for (int64_t t = 0; t < r.n_tokens(); ++t)
                for (int64_t k = 0; k < r.k; ++k)
                    QCOMPARE(r.expert(t, col, k), ids[t].toArray()[m].toArray()[k].toInt());
        }
        QCOMPARE(panel_->session()->lastRouting()->experts, r.experts);

        // A second turn carries the first: the prompt holds both answers' turns.
        type_and_send("More");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 30000);
        QVERIFY2(done[1][0].toBool(), qPrintable(done[1][1].toString()));
        QCOMPARE(panel_->session()->messages().size(), size_t(4));
        QCOMPARE(inspected_.size(), size_t(2));
        QVERIFY(inspected_[1].n_tokens() > r.n_tokens());
    }

    void stopAbortsTheRequest() {
        const QString url = start("sglang", {"--chat-delay", "0.05"});
        QVERIFY(!url.isEmpty());
        panel_->setServer(url, "sglang", "");
        panel_->setMaxTokens(100000);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Tell me everything");
        QTRY_VERIFY_WITH_TIMEOUT(panel_->session()->piecesReceived() >= 3, 30000);
        auto* stop = panel_->findChild<QPushButton*>("chatStop");
        QVERIFY(stop->isEnabled());
        QTest::mouseClick(stop, Qt::LeftButton);
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 10000);
        QVERIFY(done[0][0].toBool());
        QCOMPARE(panel_->session()->lastResult()->stop_reason, std::string("cancelled"));
        const int pieces = panel_->session()->piecesReceived();
        QVERIFY(pieces < 1000);
        QTest::qWait(300);  // nothing arrives after Stop
        QCOMPARE(panel_->session()->piecesReceived(), pieces);
        QVERIFY(!stop->isEnabled());
        QVERIFY(panel_->findChild<QPushButton*>("chatSend")->isEnabled());
        QVERIFY(inspected_.empty());
        QVERIFY(!QFile::exists(routing_log_));  // no routing was asked for
    }

    void aServerWithoutTheFeatureSaysWhichFlag() {
        const QString url = start("vllm", {"--mode", "no_feature"});
        QVERIFY(!url.isEmpty());
        panel_->setServer(url, "vllm", "test-model");
        panel_->setMaxTokens(4);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Route?");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 30000);
        QVERIFY(!done[0][0].toBool());
        QVERIFY2(panel_->statusText().contains("--enable-return-routed-experts"), qPrintable(panel_->statusText()));
        QVERIFY2(panel_->transcript().contains("Model: The stand-in server answers:"), qPrintable(panel_->transcript()));
        QVERIFY(inspected_.empty());
        QVERIFY(!panel_->session()->lastRouting());
    }

    void otherServerErrorsAreShown() {
        const QString url = start("vllm");
        QVERIFY(!url.isEmpty());
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        panel_->setServer(url, "vllm", "no-such-model");
        type_and_send("Hi");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 30000);
        QVERIFY(!done[0][0].toBool());
        QVERIFY2(panel_->statusText().contains("404") && panel_->statusText().contains("does not exist"),
                 qPrintable(panel_->statusText()));
        // vLLM needs the served model name.
        panel_->setServer(url, "vllm", "");
        type_and_send("Hi");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 30000);
        QVERIFY2(panel_->statusText().contains("served model"), qPrintable(panel_->statusText()));
        // Nobody listening.
        server_->kill();
        server_->waitForFinished(5000);
        panel_->setServer(url, "sglang", "");
        type_and_send("Hi");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 3, 30000);
        QVERIFY(!done[2][0].toBool());
        QVERIFY2(panel_->statusText().contains("sglang server " + url), qPrintable(panel_->statusText()));
        QVERIFY(panel_->findChild<QPushButton*>("chatSend")->isEnabled());
        // Back to the local model: it answers again.
        panel_->setLocal();
        panel_->setMaxTokens(3);
        type_and_send("Local");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 4, 60000);
        QVERIFY2(done[3][0].toBool(), qPrintable(done[3][1].toString()));
        QVERIFY(!panel_->session()->lastFromServer());
    }

    void aConfigOnlyDirectoryChatsWithItsServer() {
        // A model too big for this machine is held as config.json and the tokenizer only: it
        // opens (no weights: tracing and local chat say why), and the server chat works with
        // its routing in the inspector.
        const QString dir = fx_.tmp.filePath("config-only");
        QDir().mkpath(dir);
        for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
            if (QFile::exists(fx_.model_dir + "/" + f)) QVERIFY(QFile::copy(fx_.model_dir + "/" + f, dir + "/" + f));
        Workbench wb;
        wb.openModel(dir);
        QTRY_VERIFY_WITH_TIMEOUT(wb.hasModelConfig(), 30000);
        QVERIFY(wb.waitIdle(30000));
        QVERIFY(!wb.hasModel());
        QVERIFY(!wb.canTrace());
        QVERIFY(wb.tokenizer());
        QVERIFY(!wb.modelSummary().weights_present);
        ChatPanel panel(&wb);
        connect(&panel, &ChatPanel::inspectRequested, this, [this](const TokenRouting& r) { inspected_.push_back(r); });
        QSignalSpy done(panel.session(), &ChatSession::answerFinished);
        panel.resize(700, 600);
        panel.show();
        auto send = [&](const QString& text) {
            auto* input = panel.findChild<QLineEdit*>("chatInput");
            input->setFocus();
            QTest::keyClicks(input, text);
            QTest::mouseClick(panel.findChild<QPushButton*>("chatSend"), Qt::LeftButton);
        };
        // It opens on the server; the ablation panel's mask is said not to apply there.
        auto* backend = panel.findChild<QComboBox*>("chatBackend");
        QCOMPARE(backend->currentIndex(), 1);
        panel.showMaskSpec("L1:3");
        auto* mask = panel.findChild<QLabel*>("chatMask");
        QVERIFY2(mask->text().contains("not applied"), qPrintable(mask->text()));
        QVERIFY(!panel.findChild<QCheckBox*>("chatApplyMask")->isEnabled());
        QVERIFY(!panel.findChild<QCheckBox*>("chatCompare")->isEnabled());
        panel.setLocal();
        QVERIFY2(mask->text().contains("L1:3") && !mask->text().contains("not applied"), qPrintable(mask->text()));
        QVERIFY(panel.findChild<QCheckBox*>("chatCompare")->isEnabled());
        panel.showMaskSpec({});
        send("Hi");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 10000);
        QVERIFY(!done[0][0].toBool());
        QVERIFY2(done[0][1].toString().contains("no weights"), qPrintable(done[0][1].toString()));
        const QString url = start("sglang");
        QVERIFY(!url.isEmpty());
        panel.setServer(url, "sglang", "");
        panel.setMaxTokens(8);
        send("Hello server");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 30000);
        QVERIFY2(done[1][0].toBool(), qPrintable(done[1][1].toString()));
        QTRY_COMPARE_WITH_TIMEOUT(inspected_.size(), size_t(1), 30000);
        QCOMPARE(inspected_[0].k, wb.modelConfig()->num_experts_per_tok);
        QVERIFY(panel.session()->waitIdle(30000));
    }
};

QTEST_MAIN(TestUiChatServer)
#include "test_ui_chat_server.moc"
