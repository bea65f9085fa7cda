// lower_worker_priority, wait_for_jobs; see job.h.
#include "ui/job.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
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

bool wait_for_jobs(const int& jobs, int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (jobs > 0 && !deadline.hasExpired()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return jobs == 0;
}

}  // namespace moe::ui
