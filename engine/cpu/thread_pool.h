// A fixed pool of worker threads for the CPU backend's parallel loops. The calling
// thread takes part, so a pool of n threads starts n-1 workers. Tasks are handed out
// dynamically (an atomic counter), so uneven tasks (experts with different token
// counts) balance. Workers spin briefly between loops (decode issues hundreds of short
// loops per token) and then sleep, so an idle pool costs no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::cpu {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1, including the caller
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    // Runs fn(task, thread) for task in [0, n_tasks); returns when all are done. Calls from
    // several threads are serialised. Not reentrant: fn must not call parallel_for.
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

private:
    void worker_loop(int index);
    void run_tasks(int thread);

    int n_threads_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t, int)>* fn_ = nullptr;
    int64_t n_tasks_ = 0;
    std::atomic<int64_t> next_task_{0};
    std::atomic<int> active_{0};          // workers still inside the current loop
    std::atomic<uint64_t> generation_{0};  // bumped once per parallel_for
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::mutex run_mutex_;  // one parallel_for at a time
    std::condition_variable wake_;
    std::atomic<int> sleeping_{0};
};

// Number of hardware threads the process may use.
int default_thread_count();

}  // namespace moe::cpu
