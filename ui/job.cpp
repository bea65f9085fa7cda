// lower_worker_priority, job_pool, wait_for_jobs; see job.h.
#include "ui/job.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QThread>
#include <algorithm>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moe::ui {

void lower_worker_priority() {
#ifdef __linux__
    thread_local bool lowered = false;
    if (lowered) return;
    lowered = true;
    // Linux keeps a nice value per thread; lowering one's own needs no privilege. The
    // outcome is not checked: at worst the work competes with the GUI as equals.
    const auto tid = static_cast<id_t>(syscall(SYS_gettid));
    (void)setpriority(PRIO_PROCESS, tid, std::max(getpriority(PRIO_PROCESS, tid), 10));
#endif
}

QThreadPool* job_pool() {
    // Made once and never destroyed: a job may still run while the application object goes,
    // and the pool's threads end with the process.
    static QThreadPool* const pool = [] {
        auto* p = new QThreadPool;
        p->setMaxThreadCount(std::max(2, QThread::idealThreadCount()));
        p->setObjectName(QStringLiteral("moe-workbench jobs"));
        return p;
    }();
    return pool;
}

bool wait_for_jobs(const int& jobs, int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (jobs > 0 && !deadline.hasExpired()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return jobs == 0;
}

}  // namespace moe::ui
