// ui/job.h: the jobs' outcome (value, or what the work threw) delivered on the GUI thread, and
// the jobs' own thread pool — while jobs hold every thread of it, Qt's global pool (where Qt's
// raster painting splits its large fills, the GUI thread waiting for them) still runs work.
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QThread>
#include <QThreadPool>
#include <QtTest>
#include <atomic>
#include <stdexcept>

#include "ui/job.h"

class TestUiJob : public QObject {
    Q_OBJECT
private slots:
    void outcomesReachTheGuiThread() {
        int jobs = 2;
        QThread* worker = nullptr;
        QThread* delivered_on = nullptr;
        moe::ui::JobResult<int> value, thrown;
        moe::ui::run_job<int>(
            this,
            [&worker] {
                worker = QThread::currentThread();
                return 42;
            },
            [&](moe::ui::JobResult<int> r) {
                value = std::move(r);
                delivered_on = QThread::currentThread();
                --jobs;
            });
        moe::ui::run_job<int>(
            this, []() -> int { throw std::runtime_error("the store is locked"); },
            [&](moe::ui::JobResult<int> r) {
                thrown = std::move(r);
                --jobs;
            });
        QVERIFY(moe::ui::wait_for_jobs(jobs, 10000));
        QVERIFY(value.ok());
        QCOMPARE(*value.value, 42);
        QVERIFY(worker && worker != QThread::currentThread());
        QCOMPARE(delivered_on, QThread::currentThread());
        QVERIFY(!thrown.ok());
        QCOMPARE(thrown.error, QString("the store is locked"));
    }

    void jobsLeaveQtsGlobalPoolFree() {
        QVERIFY(moe::ui::job_pool() != QThreadPool::globalInstance());
        // Jobs that hold every thread of their pool, and more, until released.
        std::atomic<bool> release{false};
        std::atomic<int> running{0};
        int jobs = moe::ui::job_pool()->maxThreadCount() + QThreadPool::globalInstance()->maxThreadCount();
        const int started = jobs;
        for (int i = 0; i < started; ++i)
            moe::ui::run_job<int>(
                this,
                [&] {
                    ++running;
                    while (!release) QThread::msleep(1);
                    return 0;
                },
                [&](moe::ui::JobResult<int>) { --jobs; });
        QTRY_COMPARE_WITH_TIMEOUT(running.load(), moe::ui::job_pool()->maxThreadCount(), 10000);
        // Work on the global pool runs now, not once the jobs end.
        std::atomic<bool> ran{false};
        QThreadPool::globalInstance()->start([&ran] { ran = true; });
        QElapsedTimer t;
        t.start();
        while (!ran && t.elapsed() < 5000) QThread::msleep(1);
        const bool ran_while_jobs_held_threads = ran;
        release = true;
        QVERIFY(moe::ui::wait_for_jobs(jobs, 10000));
        QVERIFY2(ran_while_jobs_held_threads, "work on Qt's global pool waited for the jobs");
        QCOMPARE(running.load(), started);
    }
};

QTEST_GUILESS_MAIN(TestUiJob)
#include "test_ui_job.moc"
