// The progress line of long moewb jobs (trace, ablate) on stderr, and their Ctrl-C
// handling: the first Ctrl-C asks the job to stop at the next safe point, a second one
// ends the process at once.
#pragma once

#include <cstdint>
#include <string>

namespace moewb {

class ProgressBar {
public:
    explicit ProgressBar(bool quiet);
    // Redrawn in place on a terminal (at most every 0.2 s), a line every 10 s otherwise.
    // `detail` follows the rate and ETA (e.g. documents done, the domain).
    void update(double seconds, int64_t done, int64_t total, const std::string& unit, const std::string& detail,
                bool final = false);
    void done();  // ends the line

private:
    bool quiet_, tty_;
    bool drawn_ = false;
    double last_ = -1e9;
};

// Installs the SIGINT handler for the lifetime of the object; restores the old one after.
class InterruptGuard {
public:
    InterruptGuard();
    ~InterruptGuard();
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;
    static bool interrupted();
};

// A resumable job's (trace, capture, import) closing words: that the run was already
// complete (stdout), and its exit code — 130 with a note on stderr when Ctrl-C left the run
// incomplete, else 0. `job` is "trace", "capture" or "import".
void print_already_complete(int64_t run_id, const char* job, const std::string& db_path);
int resumable_exit(const char* job, int64_t run_id, bool stopped, bool complete);

// Runs `job` with Ctrl-C handled (InterruptGuard) and returns what it returns; when it
// throws, the progress line is ended before the error is reported.
template <class Job>
auto run_interruptible(ProgressBar& bar, Job&& job) {
    InterruptGuard guard;
    try {
        return job();
    } catch (...) {
        bar.done();
        throw;
    }
}

}  // namespace moewb
