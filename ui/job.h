// Runs one piece of engine/analysis work on a worker thread (the jobs' own thread pool) and
// delivers its outcome on the GUI thread. Not a scheduler: jobs run as soon as a pool thread
// is free. Nothing is thrown across the thread: the work's moe::Error or std::exception is
// caught on the worker and handed back as a message, so the event loop never blocks and
// never sees an exception.
#pragma once

#include <QFutureWatcher>
#include <QObject>
#include <QString>
#include <QThreadPool>
#include <QtConcurrent/QtConcurrentRun>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

namespace moe::ui {

template <class T>
struct JobResult {
    std::optional<T> value;  // set when the work returned
    QString error;           // what the work threw, when it did
    bool ok() const { return value.has_value(); }
};

// Lowers the calling worker thread's scheduling priority (nice +10, Linux), once per thread.
// Engine and store work then yields the CPU to the GUI thread, its GL driver threads and the
// display server whenever the machine is busy, and runs at full speed when it is not; threads
// a worker starts (a model's compute threads, created when a job loads it) inherit it.
void lower_worker_priority();

// The thread pool the jobs run on (as many threads as the machine has cores, at least 2) — not
// Qt's global pool: Qt's raster painting splits large fills over the global pool's threads and
// the GUI thread waits for them, so a job holding a global thread (at its lowered priority)
// would hold up the paint until the job ended.
QThreadPool* job_pool();

// Runs `work()` on a worker thread; `done(result)` runs on `context`'s thread (the GUI
// thread) when it has finished, unless `context` has been destroyed by then.
template <class T>
void run_job(QObject* context, std::function<T()> work, std::function<void(JobResult<T>)> done) {
    auto* watcher = new QFutureWatcher<JobResult<T>>(context);
    QObject::connect(watcher, &QFutureWatcher<JobResult<T>>::finished, context, [watcher, done = std::move(done)] {
        done(watcher->result());
        watcher->deleteLater();
    });
    watcher->setFuture(QtConcurrent::run(job_pool(), [work = std::move(work)]() -> JobResult<T> {
        lower_worker_priority();
        JobResult<T> r;
        try {
            r.value.emplace(work());
        } catch (const std::exception& e) {
            r.error = QString::fromUtf8(e.what());
        } catch (...) {
            r.error = QStringLiteral("unknown error");
        }
        return r;
    }));
}

// Shared between a GUI object and the worker it started: the request to stop, and the object
// the worker posts its progress to. The owner's destructor detaches it (under the mutex), so
// the worker stops at its next check and never posts to a dead object.
template <class Target>
struct JobControl {
    std::atomic<bool> stop{false};
    std::mutex mutex;
    Target* target = nullptr;
    void detach() {
        std::lock_guard lock(mutex);
        stop = true;
        target = nullptr;
    }
};

// Processes events until the counter of running jobs is 0 or the timeout passes; whether
// it reached 0 (tests, shutdown).
bool wait_for_jobs(const int& jobs, int timeout_ms);

}  // namespace moe::ui
