// A monkey test of the live main window on a real X server (xvfb-run): a few hundred seeded
// random clicks, drags, wheel turns and key presses over every visible widget — docks
// floated and closed, tabs switched, experts toggled, the inspector hovered — while a trace
// and a chat answer run on worker threads. Modal dialogs it opens (file choosers, About) are
// closed by a timer. Asserts that nothing crashes or asserts, that the window, the jobs and
// the GL view end in a sound state, and that the event loop never stalls over 100 ms (see
// below for what counts as a stall); the worst actions and event deliveries are reported.
#include <QAbstractButton>
#include <QDialog>
#include <QDir>
#include <QDockWidget>
#include <QDrag>
#include <QElapsedTimer>
#include <QFile>
#include <QLineEdit>
#include <QMenuBar>
#include <QPlatformSurfaceEvent>
#include <QPointer>
#include <QRandomGenerator>
#include <QTimer>
#include <QtTest>
#include <ctime>
#include <map>
#include <optional>

#include "tests/ui_test_support.h"
#include "ui/ablation_panel.h"
#include "ui/chat_panel.h"
#include "ui/imgui_widget.h"
#include "ui/main_window.h"
#include "ui/routing_inspector.h"
#include "ui/routing_inspector_view.h"

using namespace moe::ui;

namespace {
// CPU time of the calling thread in ms: what the GUI thread itself spent, whatever the load.
double thread_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
// Nanoseconds a thread has run and waited, runnable, for a CPU: the first two fields of its
// schedstat file (/proc/thread-self/schedstat, /proc/PID/task/TID/schedstat).
struct SchedTime {
    qint64 cpu_ns = 0, wait_ns = 0;
};
std::optional<SchedTime> read_schedstat(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return std::nullopt;
    const QList<QByteArray> parts = f.readAll().simplified().split(' ');
    bool ok_cpu = false, ok_wait = false;
    const SchedTime t{parts.value(0).toLongLong(&ok_cpu), parts.value(1).toLongLong(&ok_wait)};
    return ok_cpu && ok_wait ? std::optional(t) : std::nullopt;
}
// How long the calling thread has waited for a CPU, or -1 where the kernel does not say.
qint64 thread_runqueue_wait_ns() {
    const auto t = read_schedstat("/proc/thread-self/schedstat");
    return t ? t->wait_ns : -1;
}
// The X server of $DISPLAY (xvfb-run's Xvfb): its process id, or 0 where it is not found.
qint64 x_server_pid() {
    const QByteArray display = qgetenv("DISPLAY");
    if (!display.contains(':')) return 0;
    const QByteArray number = display.mid(display.indexOf(':')).split('.').value(0);  // ":99" of ":99.0"
    for (const QString& entry : QDir("/proc").entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        bool numeric = false;
        const qint64 pid = entry.toLongLong(&numeric);
        if (!numeric) continue;
        QFile f(QString("/proc/%1/cmdline").arg(pid));
        if (!f.open(QIODevice::ReadOnly)) continue;
        const QList<QByteArray> args = f.readAll().split('\0');
        const QByteArray program = args.value(0).mid(args.value(0).lastIndexOf('/') + 1);
        if ((program == "Xvfb" || program == "Xorg" || program == "X") && args.contains(number)) return pid;
    }
    return 0;
}
// The display stack's time: the X server's threads and the software GL driver's threads in
// this process (Mesa's llvmpipe renders and composes on the CPU in threads named
// "llvmpipe-N"), summed.
SchedTime display_stack_time(qint64 x_pid) {
    SchedTime sum;
    auto add_threads = [&sum](qint64 pid, const QByteArray& name_prefix) {
        for (const QString& tid :
             QDir(QString("/proc/%1/task").arg(pid)).entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
            const QString dir = QString("/proc/%1/task/%2/").arg(pid).arg(tid);
            if (!name_prefix.isEmpty()) {
                // A thread's name read once (the heartbeat asks every 5 ms on the GUI thread).
                static std::map<QString, bool> named;
                auto it = named.find(dir);
                if (it == named.end()) {
                    QFile comm(dir + "comm");
                    it = named.emplace(dir, comm.open(QIODevice::ReadOnly) && comm.readAll().startsWith(name_prefix))
                             .first;
                }
                if (!it->second) continue;
            }
            if (const auto t = read_schedstat(dir + "schedstat")) {
                sum.cpu_ns += t->cpu_ns;
                sum.wait_ns += t->wait_ns;
            }
        }
    };
    if (x_pid > 0) add_threads(x_pid, {});
    add_threads(QCoreApplication::applicationPid(), "llvmpipe");
    return sum;
}
// Diagnostics: every event delivery that takes long, with its receiver and depth (events
// delivered inside another's handling, e.g. in a modal dialog's loop, have depth > 0).
struct SlowEvent {
    QString receiver;
    int type = 0, depth = 0;
    double wall_ms = 0, cpu_ms = 0, runqueue_ms = 0;
};
std::vector<SlowEvent> g_slow_events;
// Where the GUI thread's time went: wall time of top-level deliveries by receiver class and type.
std::map<QString, std::pair<int, double>> g_time_by_kind;
// Native window surfaces created (a floated dock, a dialog) or torn down (a floated dock
// docked again, a dialog closed), and docks closed (the window laid out and composed anew).
int g_window_changes = 0;

class TimedApplication : public QApplication {
public:
    using QApplication::QApplication;
    bool notify(QObject* receiver, QEvent* e) override {
        QElapsedTimer t;
        t.start();
        const double cpu0 = thread_cpu_ms();
        const int type = e->type();
        if (type == QEvent::PlatformSurface) ++g_window_changes;  // created, or about to be destroyed
        if (type == QEvent::Close && qobject_cast<QDockWidget*>(receiver)) ++g_window_changes;
        const qint64 rq0 = thread_runqueue_wait_ns();
        const QString cls = receiver->metaObject()->className();
        QString name = cls + " " + receiver->objectName();
        if (auto* button = qobject_cast<QAbstractButton*>(receiver)) name += " \"" + button->text() + "\"";
        ++depth_;
        const bool r = QApplication::notify(receiver, e);  // may delete the receiver
        --depth_;
        const double ms = static_cast<double>(t.nsecsElapsed()) / 1e6;
        if (depth_ == 0) {
            auto& k = g_time_by_kind[QString("%1 (type %2)").arg(cls).arg(type)];
            ++k.first;
            k.second += ms;
        }
        if (ms > 25) g_slow_events.push_back({name, type, depth_, ms, thread_cpu_ms() - cpu0, (thread_runqueue_wait_ns() - rq0) / 1e6});
        return r;
    }

private:
    int depth_ = 0;
};

struct Action {
    QString what;
    double wall_ms = 0, cpu_ms = 0;
    qint64 gap_ms = 0;  // the longest stall between event-loop ticks during the action
    qint64 display_ms = 0;  // the display stack's time in that gap, taken out of it (see below)
};
}  // namespace

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

        // Modal dialogs opened by a click (file choosers, About) are closed again, and so is a
        // drag started by a drag across selected text (QDrag::exec waits for a real button
        // release, which synthetic events never bring).
        QTimer closer;
        connect(&closer, &QTimer::timeout, [] {
            QDrag::cancel();
            if (QWidget* m = QApplication::activeModalWidget()) m->close();
            for (QWidget* top : QApplication::topLevelWidgets())
                if (auto* d = qobject_cast<QDialog*>(top); d && d->isVisible() && d->isModal()) d->reject();
        });
        closer.start(50);
        // A freeze is a gap between event-loop ticks in which the GUI thread was busy or
        // blocked. Time it spent runnable but waiting for a CPU (this 2-core machine also runs
        // the jobs, Xvfb and whatever else is on it) is the machine's load, not ours: it is
        // taken out where the kernel reports it (/proc/thread-self/schedstat). Gaps in which a
        // native window appeared or went (a floated dock, a file dialog; a floated dock docked
        // again), or the inspector's GL context was made (at its first frame), are held apart:
        // Qt, the X server and the GL driver build or tear down the window or context there
        // (under Xvfb, Mesa's llvmpipe compiles the GL context's shaders on the CPU), none of it
        // the jobs' doing; they are reported. So are gaps in which a dock was closed (the window
        // is laid out again). In those gaps the GUI thread's own CPU time is held to the bound.
        // In the other gaps, time the GUI thread spent blocked while the display stack worked
        // or waited for a CPU is the display stack's: the X server taking the window's image,
        // Mesa's llvmpipe threads drawing the inspector's frames. The stall bound holds what is
        // left, the GUI thread's own; the gap with the display stack's work in it (not its
        // waits for a CPU) is held to a looser bound of its own. (When the inspector was a
        // QOpenGLWidget, Qt composed the whole window through GL on every flush: llvmpipe
        // rasterising 1400 × 900 pixels each time, 40 to 70 ms of a 109 ms stall, and 22 ms of
        // the GUI thread's time an update of the main window against 3 ms since.)
        const bool have_schedstat = thread_runqueue_wait_ns() >= 0;
        const qint64 x_pid = x_server_pid();
        QElapsedTimer tick;
        qint64 longest_gap = 0, longest_stall = 0, longest_window_gap = 0, longest_display_gap = 0, gap_in_action = 0,
               display_in_action = 0, wait0 = 0;
        SchedTime display0 = display_stack_time(x_pid);
        QString longest_display_gap_action;
        double cpu0 = thread_cpu_ms(), longest_window_gap_cpu = 0;
        auto window_changes = [] { return g_window_changes + ImGuiWidget::contextsInitialised(); };
        int windows_seen = window_changes(), window_gaps = 0;
        QString longest_stall_action, current_action = "start";
        QTimer heartbeat;
        connect(&heartbeat, &QTimer::timeout, [&] {
            const qint64 wait = have_schedstat ? thread_runqueue_wait_ns() : 0;
            const SchedTime display = display_stack_time(x_pid);
            if (tick.isValid()) {
                const qint64 gap = tick.elapsed();
                const double cpu = thread_cpu_ms() - cpu0;
                // Blocked: neither computing nor waiting for a CPU.
                const qint64 own_wait = (wait - wait0) / 1000000;
                const qint64 blocked = std::max<qint64>(0, gap - own_wait - static_cast<qint64>(cpu));
                const qint64 display_cpu = (display.cpu_ns - display0.cpu_ns) / 1000000,
                             display_wait = (display.wait_ns - display0.wait_ns) / 1000000;
                const qint64 display_part = std::min(blocked, display_cpu + display_wait);
                const qint64 stall = gap - own_wait - display_part;
                const qint64 display_gap = gap - own_wait - std::min(blocked, display_wait);
                longest_gap = std::max(longest_gap, gap);
                // The window's first paint may land in the gap after the one it was created in.
                const int changes = window_changes();
                const bool window_change = changes != windows_seen || window_gaps > 0;
                window_gaps = changes != windows_seen ? 2 : std::max(0, window_gaps - 1);
                windows_seen = changes;
                if (window_change) {
                    longest_window_gap = std::max(longest_window_gap, stall);
                    longest_window_gap_cpu = std::max(longest_window_gap_cpu, cpu);
                } else {
                    if (stall > gap_in_action) {
                        gap_in_action = stall;
                        display_in_action = display_part;
                    }
                    if (stall > longest_stall) {
                        longest_stall = stall;
                        longest_stall_action = current_action;
                    }
                    if (display_gap > longest_display_gap) {
                        longest_display_gap = display_gap;
                        longest_display_gap_action = current_action;
                    }
                }
            }
            wait0 = wait;
            display0 = display;
            cpu0 = thread_cpu_ms();
            tick.start();
        });
        heartbeat.start(5);

        std::vector<Action> actions;
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
            QString what = QString("%1 %2").arg(target->metaObject()->className(), target->objectName());
            if (auto* b = qobject_cast<QAbstractButton*>(target.data())) what += " \"" + b->text() + "\"";
            // A dock's title buttons say which dock they float or close.
            if (auto* dock = qobject_cast<QDockWidget*>(target->parentWidget()); dock && target->objectName().startsWith("qt_dockwidget"))
                what += " of " + dock->objectName();
            // A table's corner button (select all) says whose.
            if (QString(target->metaObject()->className()) == "QTableCornerButton" && target->parentWidget())
                what += " of " + target->parentWidget()->objectName();
            gap_in_action = display_in_action = 0;
            current_action = what;
            QElapsedTimer wall;
            wall.start();
            const double cpu0 = thread_cpu_ms();
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
            const double wall_ms = static_cast<double>(wall.nsecsElapsed()) / 1e6, cpu_ms = thread_cpu_ms() - cpu0;
            QTest::qWait(2);
            actions.push_back({what, wall_ms, cpu_ms, gap_in_action, display_in_action});
        }
        closer.stop();
        heartbeat.stop();
        std::sort(actions.begin(), actions.end(), [](const Action& a, const Action& b) { return a.gap_ms > b.gap_ms; });
        for (size_t i = 0; i < std::min<size_t>(5, actions.size()); ++i)
            qInfo(
                "monkey: stall %lld ms after %s (the action itself: %.1f ms, %.1f ms of it GUI-thread CPU; "
                "%lld ms more waiting on the display stack)",
                static_cast<long long>(actions[i].gap_ms), qPrintable(actions[i].what), actions[i].wall_ms,
                actions[i].cpu_ms, static_cast<long long>(actions[i].display_ms));
        std::sort(g_slow_events.begin(), g_slow_events.end(), [](const SlowEvent& a, const SlowEvent& b) { return a.wall_ms > b.wall_ms; });
        for (size_t i = 0; i < std::min<size_t>(5, g_slow_events.size()); ++i)
            qInfo("monkey: slow event (type %d, depth %d) to %s: %.1f ms, %.1f ms GUI-thread CPU, %.1f ms waiting for a CPU",
                  g_slow_events[i].type, g_slow_events[i].depth, qPrintable(g_slow_events[i].receiver), g_slow_events[i].wall_ms,
                  g_slow_events[i].cpu_ms, g_slow_events[i].runqueue_ms);
        std::vector<std::pair<double, QString>> kinds;
        for (const auto& [kind, n_ms] : g_time_by_kind) kinds.push_back({n_ms.second, QString("%1 × %2").arg(n_ms.first).arg(kind)});
        std::sort(kinds.rbegin(), kinds.rend());
        for (size_t i = 0; i < std::min<size_t>(5, kinds.size()); ++i)
            qInfo("monkey: GUI-thread time %.0f ms in %s", kinds[i].first, qPrintable(kinds[i].second));
        qInfo(
            "monkey: longest gap between event-loop ticks %lld ms; "
            "longest stall (less waiting for a CPU and on the display stack) %lld ms, after %s; "
            "longest with the display stack's work in it %lld ms, after %s; "
            "longest gap with a window or GL context made or torn down, or a dock closed, %lld ms "
            "(%.1f ms of it GUI-thread CPU at most)%s",
            static_cast<long long>(longest_gap), static_cast<long long>(longest_stall),
            qPrintable(longest_stall_action), static_cast<long long>(longest_display_gap),
            qPrintable(longest_display_gap_action), static_cast<long long>(longest_window_gap), longest_window_gap_cpu,
            x_pid > 0 ? "" : " (the X server's process was not found: its time is not taken out)");
        QVERIFY2(longest_window_gap_cpu <= 100,
                 qPrintable(QString("the GUI thread computed %1 ms in one gap with a window change").arg(longest_window_gap_cpu)));
        if (have_schedstat) {
            QVERIFY2(longest_stall <= 100, qPrintable(QString("the event loop stalled %1 ms after %2").arg(longest_stall).arg(longest_stall_action)));
            QVERIFY2(longest_display_gap <= 150,
                     qPrintable(QString("the event loop stalled %1 ms, the display stack's work included, after %2")
                                    .arg(longest_display_gap)
                                    .arg(longest_display_gap_action)));
        } else
            qInfo("monkey: the kernel does not report run-queue waits (/proc/thread-self/schedstat): the stall bound is not checked");

        // The jobs went on while the window was used (they run at a lower priority than the GUI).
        QVERIFY(chat->session()->piecesReceived() > 0);
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

int main(int argc, char* argv[]) {
    TimedApplication app(argc, argv);
    app.setAttribute(Qt::AA_Use96Dpi, true);
    TestUiMonkey tc;
    return QTest::qExec(&tc, argc, argv);
}
#include "test_ui_monkey.moc"
