// The token routing inspector (Dear ImGui drawn with OpenGL offscreen, ImGuiWidget) on a real X
// server with Mesa's software GL (xvfb-run): a document of a traced run is read on a worker
// thread and drawn without GL errors, the window holding it left on Qt's raster path; a hover over a known cell reports
// that cell's token and layer, with the experts the store holds for it; highlighting an expert colours its cells; a
// 4,000-token × 27-layer document draws only its visible rows; an idle view draws no frames.
#include <QSignalSpy>
#include <QtTest>

#include "analysis/routing_store.h"
#include "tests/ui_test_support.h"
#include "ui/routing_inspector.h"
#include "ui/routing_inspector_view.h"

using namespace moe::ui;
namespace an = moe::analysis;

class TestUiInspector : public QObject {
    Q_OBJECT
    ui_test::Fixture fx_;
    Workbench wb_;
    int64_t run_id_ = 0;

    static bool wait_frames(RoutingInspectorView* v, int n) {
        const int target = v->framesDrawn() + n;
        v->requestFrames();
        QDeadlineTimer deadline(10000);
        while (v->framesDrawn() < target && !deadline.hasExpired()) QTest::qWait(10);
        return v->framesDrawn() >= target;
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(fx_.ok);
        QVERIFY(ui_test::open_all(wb_, fx_));
        wb_.startTrace({}, 80);
        QTRY_VERIFY_WITH_TIMEOUT(!wb_.traceRunning(), 120000);
        QVERIFY(wb_.waitIdle(30000));
        QCOMPARE(wb_.runs().size(), size_t(1));
        run_id_ = wb_.runs()[0].run_id;
    }

    void hoverReportsTheTokenAndLayer() {
        RoutingInspector insp(&wb_);
        insp.resize(640, 520);
        insp.show();
        QVERIFY(QTest::qWaitForWindowExposed(&insp));
        if (!insp.view()) QSKIP("this Qt platform cannot host OpenGL; run under xvfb-run");
        RoutingInspectorView* view = insp.view();
        insp.setRun(run_id_);
        QTRY_VERIFY_WITH_TIMEOUT(view->routing().n_tokens() > 0, 30000);
        QVERIFY(wb_.waitIdle(30000));

        // What the store holds for the first finished document.
        an::RoutingStore store = an::RoutingStore::open(fx_.store_path.toStdString());
        const auto docs = store.documents(run_id_);
        QVERIFY(!docs.empty());
        QCOMPARE(insp.currentDocument(), docs[0].doc_id);
        an::StoredDocument doc;
        QVERIFY(store.read_document(run_id_, docs[0].doc_id, {}, doc));
        const std::vector<std::string> vocab = store.vocab(store.run(run_id_).model_id);
        QCOMPARE(view->routing().n_tokens(), static_cast<int64_t>(doc.token_ids.size()));
        QCOMPARE(view->routing().n_layers(), static_cast<int64_t>(doc.layers.size()));
        QVERIFY(doc.token_ids.size() > 6 && doc.layers.size() >= 2);

        QVERIFY(wait_frames(view, 2));
        QCOMPARE(view->glErrors(), 0);
        QVERIFY2(view->glFailure().isEmpty(), qPrintable(view->glFailure()));
        // Drawn offscreen and painted as an image: nothing in the window is a widget that Qt
        // composes through OpenGL (which would take the whole window with it on every flush).
        for (QWidget* c : insp.window()->findChildren<QWidget*>())
            QVERIFY2(!c->inherits("QOpenGLWidget") && !c->inherits("QQuickWidget"), c->metaObject()->className());
        QCOMPARE(view->grabFramebuffer().size(), view->size() * view->devicePixelRatio());

        // Hover over token 5, the second MoE layer.
        const int64_t row = 5, col = 1;
        QTest::mouseMove(view, view->cellCenter(row, col));
        QTRY_VERIFY_WITH_TIMEOUT(view->hoveredCell().has_value(), 5000);
        QCOMPARE(*view->hoveredCell(), std::make_pair(row, col));
        const an::StoredLayer& layer = doc.layers[static_cast<size_t>(col)];
        const QString text = insp.hoverText();
        QVERIFY2(text.contains(QString("token %1:").arg(row)), qPrintable(text));
        QVERIFY2(text.contains(QString("layer %1").arg(layer.layer)), qPrintable(text));
        const int32_t id = doc.token_ids[static_cast<size_t>(row)];
        QVERIFY2(text.contains(QString::fromStdString(display_token(vocab[static_cast<size_t>(id)]))), qPrintable(text));
        QVERIFY2(text.contains(QString("(id %1)").arg(id)), qPrintable(text));
        // Tokens of spaces alone show their spaces; others as they are (a newline as ⏎).
        QCOMPARE(display_token("  "), std::string("␣␣"));
        QCOMPARE(display_token(" the"), std::string(" the"));
        QCOMPARE(display_token("\n"), std::string("⏎"));
        // One line: the k experts in rank order, each with its gate weight.
        QVERIFY2(!text.contains('\n'), qPrintable(text));
        const QStringList ranked = text.section("experts by rank: ", 1).split(", ");
        QCOMPARE(ranked.size(), static_cast<qsizetype>(layer.k));
        for (int64_t r = 0; r < layer.k; ++r) {
            const int e = layer.experts[static_cast<size_t>(row * layer.k + r)];
            QCOMPARE(view->routing().expert(row, col, r), e);
            QCOMPARE(ranked[r].section(' ', 0, 0).toInt(), e);
        }
        QCOMPARE(view->glErrors(), 0);

        // Highlight the cell's rank-0 expert: that cell turns orange (red channel high, blue low).
        const int e0 = layer.experts[static_cast<size_t>(row * layer.k)];
        QTest::mouseMove(view, QPoint(2, view->height() - 2));  // off the cell: no hover frame
        view->setHighlightExpert(e0);
        QVERIFY(wait_frames(view, 2));
        const QImage img = view->grabFramebuffer();
        const QPoint c = view->cellCenter(row, col) * view->devicePixelRatio();
        const QColor px = img.pixelColor(c);
        QVERIFY2(px.red() > 200 && px.blue() < 80, qPrintable(px.name()));
        QCOMPARE(view->glErrors(), 0);

        // A token sent from elsewhere (a chat answer's token clicked): its row framed and its
        // experts in every layer written out.
        view->setHighlightExpert(-1);
        const TokenRouting shown = view->routing();
        insp.showToken(shown, row);
        QCOMPARE(view->markedRow(), row);
        QVERIFY(wait_frames(view, 2));
        QCOMPARE(view->glErrors(), 0);
        const QString token_text = insp.hoverText();
        QVERIFY2(token_text.startsWith(QString("token %1 ").arg(row)), qPrintable(token_text));
        for (const an::StoredLayer& l : doc.layers) {
            QStringList experts;
            for (int64_t r = 0; r < l.k; ++r) experts << QString::number(l.experts[static_cast<size_t>(row * l.k + r)]);
            QVERIFY2(token_text.contains(QString("L%1: %2").arg(l.layer).arg(experts.join(' '))), qPrintable(token_text));
        }
        // The frame is drawn: orange pixels along the row, gone when the mark is cleared.
        auto orange_in_row = [&] {
            const QImage img = view->grabFramebuffer();
            const int y = view->cellCenter(row, 0).y() * view->devicePixelRatio();
            int n = 0;
            for (int yy = std::max(0, y - 12); yy < std::min(img.height(), y + 12); ++yy)
                for (int x = 0; x < img.width(); ++x) {
                    const QColor c = img.pixelColor(x, yy);
                    n += c.red() > 230 && c.green() > 110 && c.green() < 170 && c.blue() < 40;
                }
            return n;
        };
        const int framed = orange_in_row();
        view->setMarkedRow(-1);
        QVERIFY(wait_frames(view, 2));
        const int plain = orange_in_row();
        QVERIFY2(framed > plain + 100, qPrintable(QString("%1 vs %2").arg(framed).arg(plain)));

        // Tokens that are not the run's (a chat answer): the chooser names no document, a
        // refresh of the run's list keeps the answer, and picking the document it named
        // before brings that document back.
        TokenRouting answer = shown;
        answer.run_id = 0;
        answer.doc_id = 0;
        answer.title = "chat answer";
        insp.showRouting(answer);
        QCOMPARE(insp.currentDocument(), int64_t(0));
        QCOMPARE(insp.documentCombo()->currentIndex(), -1);  // its placeholder shows
        QVERIFY(insp.documentCombo()->placeholderText().contains("chat answer"));
        insp.setRun(run_id_);  // the same run: its list read again, as during a trace
        QVERIFY(wb_.waitIdle(30000));
        QTest::qWait(50);
        QCOMPARE(view->routing().run_id, int64_t(0));
        QCOMPARE(insp.currentDocument(), int64_t(0));
        insp.selectDocument(docs[0].doc_id);
        QTRY_COMPARE_WITH_TIMEOUT(view->routing().run_id, run_id_, 30000);
        QCOMPARE(view->routing().doc_id, docs[0].doc_id);
        QCOMPARE(insp.currentDocument(), docs[0].doc_id);
    }

    void largeDocumentDrawsOnlyVisibleRows() {
        RoutingInspectorView view;
        view.resize(600, 500);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        if (!ImGuiWidget::glAvailable()) QSKIP("this Qt platform cannot host OpenGL; run under xvfb-run");
        TokenRouting r;
        const int64_t T = 4000, L = 27, K = 6;
        r.title = "synthetic";
        for (int64_t t = 0; t < T; ++t) {
            r.token_ids.push_back(static_cast<int32_t>(t % 900));
            r.token_texts.push_back("tok" + std::to_string(t));
        }
        for (int64_t l = 1; l <= L; ++l) {
            r.layers.push_back(l);
            r.layer_k.push_back(K);
            r.n_experts.push_back(64);
        }
        r.k = K;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t l = 0; l < L; ++l)
                for (int64_t k = 0; k < K; ++k) {
                    r.experts.push_back(static_cast<int32_t>((t * 7 + l * 3 + k * 11) % 64));
                    r.gate_weights.push_back(0.1f);
                }
        r.token_texts[1] = "中文";  // Chinese and full-width characters: glyphs added on demand
        r.token_texts[2] = "<｜begin▁of▁sentence｜>";
        view.setRouting(r);
        QVERIFY(wait_frames(&view, 3));
        QCOMPARE(view.glErrors(), 0);
        QVERIFY(view.hasGlyph(U'▁'));  // the base font's block elements
        if (ImGuiWidget::extraFontPath().isEmpty()) {
            qWarning("no CJK font installed (fonts-wqy-microhei): Chinese tokens draw as '?'");
        } else {
            QVERIFY(view.hasGlyph(U'中') && view.hasGlyph(U'文') && view.hasGlyph(U'｜'));
            QVERIFY(!view.hasGlyph(U'日'));  // not in any token: not in the atlas
        }
        // All 108,000 cells would be 432,000 vertices; a screenful is a few thousand.
        QVERIFY2(view.lastVertexCount() < 60000, qPrintable(QString::number(view.lastVertexCount())));

        view.scrollToRow(3980);
        QVERIFY(wait_frames(&view, 3));
        const QPoint p = view.cellCenter(3985, 26);
        QVERIFY2(view.rect().contains(p), qPrintable(QString("%1,%2").arg(p.x()).arg(p.y())));
        QTest::mouseMove(&view, p);
        QTRY_VERIFY_WITH_TIMEOUT(view.hoveredCell() == std::make_pair(int64_t(3985), int64_t(26)), 5000);
        QVERIFY(view.lastVertexCount() < 60000);

        // Idle: once the frames after the last input are drawn, no more are.
        QTest::qWait(300);
        const int frames = view.framesDrawn();
        QTest::qWait(500);
        QCOMPARE(view.framesDrawn(), frames);
        QCOMPARE(view.glErrors(), 0);
    }
};

QTEST_MAIN(TestUiInspector)
#include "test_ui_inspector.moc"
