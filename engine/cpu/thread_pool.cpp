// ThreadPool implementation; see thread_pool.h.
#include "engine/cpu/thread_pool.h"

#include <sched.h>

#include <chrono>

#include "engine/error.h"

namespace moe::cpu {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// A pause takes tens to ~150 cycles depending on the core: ~1000 of them are tens of
// microseconds, enough to bridge the serial gaps between a decode step's loops without
// burning a core that another process (or a descheduled sibling) needs.
constexpr int kSpinIterations = 1000;

}  // namespace

int default_thread_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
}

void ThreadPool::run_tasks(int thread) {
    while (true) {
        int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
        if (t >= n_tasks_) break;
        (*fn_)(t, thread);
    }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    if (n_tasks <= 0) return;
    if (n_threads_ == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    // Callers on different threads (a forward step and, say, the ablation evaluator's scoring
    // of another job on the same model) take turns: one loop uses the workers at a time.
    std::lock_guard<std::mutex> turn(run_mutex_);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    active_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // Publishing the generation under the mutex pairs with sleepers' predicate check.
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    run_tasks(0);
    // Wait for the workers; yield the core when they take long (e.g. one was descheduled).
    for (int spins = 0; active_.load(std::memory_order_acquire) > 0; ++spins) {
        if (spins < kSpinIterations) cpu_relax();
        else std::this_thread::yield();
    }
    fn_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    while (true) {
        int spins = 0;
        uint64_t g;
        while ((g = generation_.load(std::memory_order_acquire)) == seen) {
            if (++spins < kSpinIterations) {
                cpu_relax();
                continue;
            }
            std::unique_lock<std::mutex> lock(mutex_);
            sleeping_.fetch_add(1, std::memory_order_acq_rel);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            sleeping_.fetch_sub(1, std::memory_order_acq_rel);
        }
        seen = g;
        if (stop_.load()) return;
        run_tasks(index);
        active_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace moe::cpu
