// The chat panel on the offscreen platform: a message typed and sent is answered on a worker
// thread, the text streaming into the transcript, with exactly the tokens engine/generator.h
// generate() gives for the chat template's prompt; a second turn carries the first; Stop ends
// a long answer; the ablation mask is applied to the answer (rerouted experts never chosen);
// "Inspect routing" hands the answer's routing to the inspector, and a click on a generated
// token of the transcript hands it with that token's row.
#include <QLineEdit>
#include <QPushButton>
#include <QDir>
#include <QFile>
#include <QSignalSpy>
#include <QElapsedTimer>
#include <QtTest>

#include "engine/chat_template.h"
#include "engine/generator.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tests/ui_test_support.h"
#include "ui/chat_panel.h"

using namespace moe::ui;

class TestUiChat : public QObject {
    Q_OBJECT
    ui_test::Fixture fx_;
    Workbench wb_;
    ChatPanel* panel_ = nullptr;

    void type_and_send(const QString& text) {
        auto* input = panel_->findChild<QLineEdit*>("chatInput");
        input->setFocus();
        QTest::keyClicks(input, text);
        QTest::mouseClick(panel_->findChild<QPushButton*>("chatSend"), Qt::LeftButton);
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(fx_.ok);
        QVERIFY(ui_test::open_all(wb_, fx_));
        panel_ = new ChatPanel(&wb_);
        panel_->resize(700, 600);
        panel_->show();
    }
    void cleanupTestCase() { delete panel_; }

    void aChatTurnStreamsTheGeneratorsTokens() {
        panel_->setMaxTokens(6);
        panel_->setTemperature(0);  // greedy: the same tokens as a direct call
        QSignalSpy streamed(panel_->session(), &ChatSession::textStreamed);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Hello there");
        QVERIFY(panel_->session()->running());
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        const moe::GenerateResult r = *panel_->session()->lastResult();  // a copy: the next turn replaces it
        QVERIFY(!r.tokens.empty() && r.tokens.size() <= 6);

        const moe::ChatTemplate tmpl = moe::chat_template_for(fx_.model_dir.toStdString(), wb_.model()->config());
        const std::vector<int32_t> prompt =
            wb_.tokenizer()->encode(moe::render_chat(tmpl, {{"user", "Hello there"}}, true), false);
        moe::GenerateParams gp;
        gp.max_new_tokens = 6;
        gp.sampling.top_p = 0.95f;
        if (auto eos = wb_.tokenizer()->token_id(tmpl.eos)) gp.eos_ids.push_back(*eos);
        const moe::GenerateResult want = moe::generate(*wb_.model(), wb_.tokenizer().get(), prompt, gp, [](std::string_view) { return true; });
        QCOMPARE(r.tokens, want.tokens);
        QCOMPARE(r.prompt_tokens, static_cast<int64_t>(prompt.size()));
        QCOMPARE(panel_->session()->partialAnswer(), QString::fromStdString(want.text));
        QVERIFY(streamed.size() > 0);
        QVERIFY2(panel_->transcript().contains("You: Hello there"), qPrintable(panel_->transcript()));
        QVERIFY2(panel_->transcript().contains("Model: " + QString::fromStdString(want.text)), qPrintable(panel_->transcript()));
        QCOMPARE(panel_->session()->messages().size(), size_t(2));

        // A second turn: the conversation so far is part of its prompt.
        type_and_send("And then?");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 60000);
        QVERIFY(done[1][0].toBool());
        QCOMPARE(panel_->session()->messages().size(), size_t(4));
        QVERIFY(panel_->session()->lastResult()->prompt_tokens > r.prompt_tokens + static_cast<int64_t>(r.tokens.size()));
    }

    void stopStopsALongAnswer() {
        panel_->findChild<QPushButton*>("chatClear")->click();
        panel_->setMaxTokens(100000);
        panel_->setTemperature(1.0);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Tell me everything");
        QTRY_VERIFY_WITH_TIMEOUT(panel_->session()->piecesReceived() >= 3, 60000);
        auto* stop = panel_->findChild<QPushButton*>("chatStop");
        QVERIFY(stop->isEnabled());
        QTest::mouseClick(stop, Qt::LeftButton);
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QCOMPARE(panel_->session()->lastResult()->stop_reason, std::string("cancelled"));
        QVERIFY(panel_->session()->lastResult()->tokens.size() < 100000);
        QVERIFY(!stop->isEnabled());
        QVERIFY(panel_->findChild<QPushButton*>("chatSend")->isEnabled());
    }

    void aFastAnswerGrowsOncePerFrameNotPerToken() {
        panel_->findChild<QPushButton*>("chatClear")->click();
        panel_->setMaxTokens(400);
        panel_->setTemperature(1.0);
        QElapsedTimer clock;
        clock.start();
        std::vector<qint64> at;
        QString streamed;
        auto c = connect(panel_->session(), &ChatSession::textStreamed, this, [&](const QString& piece) {
            at.push_back(clock.elapsed());
            streamed += piece;
        });
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        type_and_send("Write a long story");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        disconnect(c);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        const moe::GenerateResult& r = *panel_->session()->lastResult();
        QVERIFY2(r.tokens.size() >= 100, qPrintable(QString::number(r.tokens.size())));
        QCOMPARE(streamed, QString::fromStdString(r.text));  // every piece, in order, once
        // Pieces reach the window at most every 33 ms; the last comes with the answer's end.
        for (size_t i = 1; i + 1 < at.size(); ++i) QVERIFY2(at[i] - at[i - 1] >= 30, qPrintable(QString::number(at[i] - at[i - 1])));
        // So where the tokens came several a frame (the embedded model on an idle machine), a piece
        // holds several: far fewer pieces than tokens. A machine too busy to make a token in
        // less than 6 ms makes pieces of fewer, which the intervals above still bound.
        const double ms_per_token = at.empty() ? 0 : double(at.back() - at.front()) / double(r.tokens.size());
        if (ms_per_token < 6)  // then at most a piece per 30 ms is under a fifth of the tokens
            QVERIFY2(at.size() < r.tokens.size() / 4, qPrintable(QString("%1 pieces for %2 tokens at %3 ms a token")
                                                                     .arg(at.size())
                                                                     .arg(r.tokens.size())
                                                                     .arg(ms_per_token)));
        else
            qInfo("%.1f ms a token (a busy machine): the pieces' count is not checked, their intervals are",
                  ms_per_token);
    }
    void theMaskIsAppliedAndTheRoutingInspectable() {
        // Experts 0..11 of layer 1 off (reroute): every token's layer-1 experts are 12..15.
        const moe::ExpertMask mask =
            moe::ExpertMask::parse("L1:0,1,2,3,4,5,6,7,8,9,10,11", wb_.model()->config(), moe::MaskMode::reroute);
        panel_->setMaskSource([mask] { return std::optional<moe::ExpertMask>(mask); });
        panel_->setApplyMask(true);
        panel_->setMaxTokens(5);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        QSignalSpy inspect(panel_, &ChatPanel::inspectRequested);
        type_and_send("Masked");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QVERIFY(done[0][0].toBool());
        const TokenRouting& routing = *panel_->session()->lastRouting();
        const int64_t col = routing.column_of_layer(1);
        QVERIFY(col >= 0);
        const int64_t T = panel_->session()->lastResult()->prompt_tokens;
        QCOMPARE(routing.n_tokens(), T + static_cast<int64_t>(panel_->session()->lastResult()->tokens.size()));
        for (int64_t t = 0; t < T; ++t)
            for (int64_t r = 0; r < 4; ++r) QVERIFY(routing.expert(t, col, r) >= 12);
        QVERIFY(QString::fromStdString(routing.title).contains("L1:0,1,2"));
        QTest::mouseClick(panel_->findChild<QPushButton*>("chatInspect"), Qt::LeftButton);
        QCOMPARE(inspect.size(), 1);
        // Without the mask the published routing picks some of experts 0..11 in layer 1.
        panel_->setApplyMask(false);
        type_and_send("Unmasked");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, 60000);
        const TokenRouting& plain = *panel_->session()->lastRouting();
        bool low = false;
        for (int64_t t = 0; t < plain.n_tokens() - 1; ++t)
            for (int64_t r = 0; r < 4; ++r) low = low || (plain.expert(t, col, r) >= 0 && plain.expert(t, col, r) < 12);
        QVERIFY(low);
    }

    // Each generated token of a finished answer is marked in the transcript; a click on one
    // sends the answer's routing with that token's row.
    void aClickedTokenGoesToTheInspector() {
        panel_->findChild<QPushButton*>("chatClear")->click();
        panel_->setApplyMask(false);
        panel_->setMaxTokens(12);
        panel_->setTemperature(0);
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        QSignalSpy token(panel_, &ChatPanel::inspectTokenRequested);
        type_and_send("Hello there");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QVERIFY(done[0][0].toBool());
        const TokenRouting routing = *panel_->session()->lastRouting();
        const moe::GenerateResult r = *panel_->session()->lastResult();
        const int answer = panel_->answers();
        QVERIFY(answer >= 1);
        const QString doc = panel_->transcriptView()->document()->toPlainText();
        int marked = 0, expected = 0, last_pos = -1;
        for (size_t i = 0; i < r.tokens.size(); ++i) {
            const std::string piece = wb_.tokenizer()->token_text(r.tokens[i]);
            const int64_t row = r.prompt_tokens + int64_t(i);
            const int pos = panel_->transcriptPosition(answer, row);
            // A token whose text is whole UTF-8 and part of the answer's text is marked, in order.
            const QString text = QString::fromUtf8(piece.data(), qsizetype(piece.size()));
            if (!piece.empty() && text.toUtf8() == QByteArray(piece.data(), qsizetype(piece.size())) &&
                r.text.find(piece) != std::string::npos)
                ++expected;
            if (pos < 0) continue;
            ++marked;
            QVERIFY(pos > last_pos);
            last_pos = pos;
            QVERIFY2(doc.mid(pos).startsWith(text) || !text.toUtf8().startsWith(QByteArray(piece.data(), 1)),
                     qPrintable(QString("row %1: %2 vs %3").arg(row).arg(doc.mid(pos, 10), text)));
            QCOMPARE(panel_->tokenAt(pos)->second, row);
        }
        qInfo("%d of %zu generated tokens marked (%d expected)", marked, r.tokens.size(), expected);
        QVERIFY2(marked >= 1 && marked >= expected - 1, qPrintable(QString("%1 of %2 marked").arg(marked).arg(expected)));
        // A real click on the first marked token's character.
        int64_t row = -1;
        int pos = -1;
        for (size_t i = 0; i < r.tokens.size() && pos < 0; ++i) {
            row = r.prompt_tokens + int64_t(i);
            pos = panel_->transcriptPosition(answer, row);
        }
        QTextBrowser* view = panel_->transcriptView();
        QTextCursor c(view->document());
        c.setPosition(pos);
        const QPoint at = view->cursorRect(c).center() + QPoint(2, 0);
        QCOMPARE(panel_->characterAt(at), pos);
        QTest::mouseClick(view->viewport(), Qt::LeftButton, {}, at);
        QCOMPARE(token.size(), 1);
        QCOMPARE(token[0][1].toLongLong(), row);
        QCOMPARE(token[0][0].value<TokenRouting>().token_ids, routing.token_ids);
        // Not on a token (the "You:" heading): nothing.
        QVERIFY(!panel_->inspectTokenAt(1));
        QCOMPARE(token.size(), 1);
    }

    void theUnmaskedAnswerIsShownBeside() {
        // With a mask and "also without the mask": two answers to the same turn, the first with
        // the mask, the second without, each equal to a direct greedy generation.
        panel_->findChild<QPushButton*>("chatClear")->click();
        const moe::ExpertMask mask = moe::ExpertMask::parse("*:shared", wb_.model()->config(), moe::MaskMode::reroute);
        panel_->setMaskSource([mask] { return std::optional<moe::ExpertMask>(mask); });
        panel_->setApplyMask(true);
        panel_->setCompare(true);
        panel_->setTemperature(0);
        panel_->setMaxTokens(5);
        QVERIFY(panel_->twinShown());
        QSignalSpy done(panel_->session(), &ChatSession::answerFinished);
        QSignalSpy twin_done(panel_->twin(), &ChatSession::answerFinished);
        type_and_send("Compare");
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QTRY_COMPARE_WITH_TIMEOUT(twin_done.size(), 1, 60000);
        QVERIFY(done[0][0].toBool() && twin_done[0][0].toBool());
        const moe::ChatTemplate tmpl = moe::chat_template_for(fx_.model_dir.toStdString(), wb_.model()->config());
        const std::vector<int32_t> prompt = wb_.tokenizer()->encode(moe::render_chat(tmpl, {{"user", "Compare"}}, true), false);
        auto direct = [&](const moe::ExpertMask* m) {
            moe::GenerateParams gp;
            gp.max_new_tokens = 5;
            gp.sampling.temperature = 0;
            gp.mask = m;
            if (auto eos = wb_.tokenizer()->token_id(tmpl.eos)) gp.eos_ids.push_back(*eos);
            return moe::generate(*wb_.model(), wb_.tokenizer().get(), prompt, gp, [](std::string_view) { return true; }).tokens;
        };
        QCOMPARE(panel_->session()->lastResult()->tokens, direct(&mask));
        QCOMPARE(panel_->twin()->lastResult()->tokens, direct(nullptr));
        QVERIFY2(panel_->twinTranscript().contains("Without the mask:"), qPrintable(panel_->twinTranscript()));
        QVERIFY2(panel_->transcript().contains("Model with the mask: "), qPrintable(panel_->transcript()));
        panel_->setCompare(false);
        QVERIFY(!panel_->twinShown());
        panel_->setApplyMask(false);
    }

    void aThinkingModelsThinkingIsShownAsSuch() {
        // A model whose template is R1's: the prompt opens the thinking section, so the streamed
        // text is shown under [thinking], grey and italic, until </think>.
        const QString dir = fx_.tmp.filePath("r1-model");
        QDir().mkpath(dir);
        for (const QString& f : QDir(fx_.model_dir).entryList(QDir::Files)) QVERIFY(QFile::copy(fx_.model_dir + "/" + f, dir + "/" + f));
        {
            QFile cfg(dir + "/tokenizer_config.json");
            QFile::remove(dir + "/tokenizer_config.json");
            QVERIFY(cfg.open(QIODevice::WriteOnly));
            cfg.write(R"({"chat_template": "{% set c = m.split('</think>')[-1] %}{{'<｜Assistant｜><think>\\n'}}"})");
        }
        Workbench wb;
        wb.openModel(dir);
        QTRY_VERIFY_WITH_TIMEOUT(wb.hasModel(), 30000);
        QVERIFY(wb.waitIdle(30000));
        QCOMPARE(moe::chat_template_for(dir.toStdString(), wb.model()->config()).style, moe::ChatStyle::deepseek_r1);
        ChatPanel panel(&wb);
        panel.resize(700, 600);
        panel.show();
        panel.setMaxTokens(6);
        QSignalSpy done(panel.session(), &ChatSession::answerFinished);
        auto* input = panel.findChild<QLineEdit*>("chatInput");
        input->setFocus();
        QTest::keyClicks(input, "Why?");
        QTest::mouseClick(panel.findChild<QPushButton*>("chatSend"), Qt::LeftButton);
        QTRY_COMPARE_WITH_TIMEOUT(done.size(), 1, 60000);
        QVERIFY2(done[0][0].toBool(), qPrintable(done[0][1].toString()));
        const QString t = panel.transcript();
        QVERIFY2(t.contains("Model: [thinking] "), qPrintable(t));
        QVERIFY2(t.endsWith(QString::fromStdString(panel.session()->lastResult()->text)), qPrintable(t));
    }
};

QTEST_MAIN(TestUiChat)
#include "test_ui_chat.moc"
