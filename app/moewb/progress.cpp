// Progress line and Ctrl-C handling; see progress.h.
#include "app/moewb/progress.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace moewb {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
struct sigaction g_old_action = {};

void on_sigint(int) {
    g_interrupted = 1;
}

std::string clock_text(double seconds) {
    if (!(seconds >= 0) || seconds > 360000) return "--:--";
    const auto s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

}  // namespace

ProgressBar::ProgressBar(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {}

void ProgressBar::update(double seconds, int64_t done, int64_t total, const std::string& unit,
                         const std::string& detail, bool final) {
    if (quiet_) return;
    const double interval = tty_ ? 0.2 : 10.0;
    if (!final && seconds - last_ < interval && done != 0) return;
    last_ = seconds;
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    std::fprintf(stderr, "%s[%s] %3.0f%%  %lld/%lld %s  %.0f %s/s  ETA %s  %s%s", tty_ ? "\r" : "", bar.c_str(),
                 frac * 100.0, static_cast<long long>(done), static_cast<long long>(total), unit.c_str(), rate,
                 unit.c_str(), clock_text(eta).c_str(), detail.c_str(), tty_ ? "\x1b[K" : "\n");
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressBar::done() {
    if (drawn_ && tty_) std::fputc('\n', stderr);
    drawn_ = false;
}

InterruptGuard::InterruptGuard() {
    g_interrupted = 0;
    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the process
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &g_old_action);
}

InterruptGuard::~InterruptGuard() {
    sigaction(SIGINT, &g_old_action, nullptr);
}

bool InterruptGuard::interrupted() {
    return g_interrupted != 0;
}

void print_already_complete(int64_t run_id, const char* job, const std::string& db_path) {
    std::printf("run %lld: this %s is already complete in %s (use --new-run for another run)\n",
                static_cast<long long>(run_id), job, db_path.c_str());
}

int resumable_exit(const char* job, int64_t run_id, bool stopped, bool complete) {
    if (!stopped || complete) return 0;
    if (run_id == 0) {
        std::fprintf(stderr, "moewb %s: interrupted before anything was stored.\n", job);
        return 130;
    }
    std::fprintf(stderr, "moewb %s: interrupted; run %lld is incomplete. Run the same command again to resume.\n", job,
                 static_cast<long long>(run_id));
    return 130;
}

}  // namespace moewb
