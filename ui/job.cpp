// wait_for_jobs; see job.h.
#include "ui/job.h"

#include <QCoreApplication>
#include <QDeadlineTimer>

namespace moe::ui {

bool wait_for_jobs(const int& jobs, int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (jobs > 0 && !deadline.hasExpired()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return jobs == 0;
}

}  // namespace moe::ui
