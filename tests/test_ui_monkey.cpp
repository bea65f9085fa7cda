// A monkey test of the live main window on a real X server (xvfb-run): a few hundred seeded
// random clicks, drags, wheel turns and key presses over every visible widget — docks
// floated and closed, tabs switched, experts toggled, the inspector hovered — while a trace
// and a chat answer run on worker threads. Modal dialogs it opens (file choosers, About) are
// closed by a timer. Asserts that nothing crashes or asserts and that the window, the jobs and
// the GL view end in a sound state; the longest gap between event-loop ticks is reported
// (not asserted: tests do not time).
#include <QAbstractButton>
#include <QDialog>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QLineEdit>
#include <QMenuBar>
#include <QPointer>
#include <QRandomGenerator>
#include <QTimer>
#include <QtTest>

#include "tests/ui_test_support.h"
#include "ui/ablation_panel.h"
#include "ui/chat_panel.h"
#include "ui/main_window.h"
#include "ui/routing_inspector.h"
#include "ui/routing_inspector_view.h"

using namespace moe::ui;

class TestUiMonkey : public QObject {
    Q_OBJECT
    ui_test::Fixture fx_;

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName("MoE Workbench tests");
        QCoreApplication::setApplicationName("test_ui_monkey");
        QSettings().clear();
        QVERIFY(fx_.ok);
    }

    void randomInputWhileJobsRun() {
        MainWindow w;
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        StartOptions o;
        o.model_dir = fx_.model_dir;
        o.store_path = fx_.store_path;
        o.corpus_path = fx_.corpus_dir;
        o.auto_trace_tokens = 120;
        w.start(o);
        Workbench* wb = w.workbench();
        QTRY_VERIFY_WITH_TIMEOUT(wb->runs().size() == 1 && !wb->traceRunning(), 120000);
        QVERIFY(wb->waitIdle(30000));

        // Jobs running during the monkey: a long chat answer and another trace.
        ChatPanel* chat = w.chatPanel();
        chat->setMaxTokens(100000);
        chat->setTemperature(1.0);
        chat->findChild<QLineEdit*>("chatInput")->setText("Go on and on");
        chat->send();
        QVERIFY(chat->session()->running());
        wb->startTrace({}, 0);

        // Modal dialogs opened by a click (file choosers, About) are closed again.
        QTimer closer;
        connect(&closer, &QTimer::timeout, [] {
            if (QWidget* m = QApplication::activeModalWidget()) m->close();
            for (QWidget* top : QApplication::topLevelWidgets())
                if (auto* d = qobject_cast<QDialog*>(top); d && d->isVisible() && d->isModal()) d->reject();
        });
        closer.start(50);
        QElapsedTimer tick;
        qint64 longest_gap = 0;
        QTimer heartbeat;
        connect(&heartbeat, &QTimer::timeout, [&] {
            if (tick.isValid()) longest_gap = std::max(longest_gap, tick.elapsed());
            tick.start();
        });
        heartbeat.start(5);

        QRandomGenerator rng(20261125);
        const int keys[] = {Qt::Key_Tab, Qt::Key_Left, Qt::Key_Right, Qt::Key_Up, Qt::Key_Down, Qt::Key_Space,
                            Qt::Key_A, Qt::Key_3, Qt::Key_PageDown, Qt::Key_Home, Qt::Key_Escape, Qt::Key_F5};
        for (int i = 0; i < 400; ++i) {
            QList<QWidget*> widgets;
            for (QWidget* c : w.findChildren<QWidget*>())
                // Widgets of the main window itself: not menus (Quit is one click away), not
                // floated docks or other windows.
                if (c->isVisible() && c->width() > 2 && c->height() > 2 && c->window() == &w && !qobject_cast<QMenuBar*>(c))
                    widgets << c;
            QPointer<QWidget> target = widgets.value(static_cast<int>(rng.bounded(static_cast<quint32>(widgets.size()))));
            if (!target) continue;
            const QPoint p(static_cast<int>(rng.bounded(static_cast<quint32>(target->width()))),
                           static_cast<int>(rng.bounded(static_cast<quint32>(target->height()))));
            switch (rng.bounded(6)) {
            case 0:
            case 1: QTest::mouseClick(target, Qt::LeftButton, {}, p); break;
            case 2: QTest::mouseMove(target, p); break;
            case 3: {  // a drag
                QTest::mousePress(target, Qt::LeftButton, {}, p);
                if (target) QTest::mouseMove(target, p + QPoint(static_cast<int>(rng.bounded(60u)) - 30, static_cast<int>(rng.bounded(60u)) - 30));
                if (target) QTest::mouseRelease(target, Qt::LeftButton, {}, p);
                break;
            }
            case 4: {
                QWheelEvent wheel(QPointF(p), QPointF(target->mapToGlobal(p)), QPoint(), QPoint(0, rng.bounded(2) ? 120 : -120),
                                  Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
                QApplication::sendEvent(target, &wheel);
                break;
            }
            default: {
                const int key = keys[rng.bounded(static_cast<quint32>(std::size(keys)))];
                QTest::keyClick(target, static_cast<Qt::Key>(key), rng.bounded(4) == 0 ? Qt::ControlModifier : Qt::NoModifier);
            }
            }
            QTest::qWait(2);
        }
        closer.stop();
        heartbeat.stop();
        qInfo("monkey: longest gap between event-loop ticks: %lld ms", static_cast<long long>(longest_gap));

        // Everything ends soundly: the answer stops, the trace finishes, the GL view drew cleanly.
        chat->session()->stop();
        chat->twin()->stop();  // the unmasked twin, when a click turned the comparison on
        wb->cancelTrace();
        w.ablationPanel()->jobs()->cancel();
        QTRY_VERIFY_WITH_TIMEOUT(!chat->session()->running() && !wb->traceRunning() && !w.ablationPanel()->jobs()->running(),
                                 120000);
        QVERIFY(w.ablationPanel()->jobs()->waitIdle(30000));
        QVERIFY(chat->session()->waitIdle(30000));
        QVERIFY(chat->twin()->waitIdle(30000));
        QVERIFY(wb->waitIdle(30000));
        QVERIFY(w.isVisible());
        if (RoutingInspectorView* v = w.inspector()->view()) QCOMPARE(v->glErrors(), 0);
        QVERIFY(!w.grab().isNull());
        w.close();
    }
};

QTEST_MAIN(TestUiMonkey)
#include "test_ui_monkey.moc"
