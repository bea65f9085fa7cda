// Feed-forward units; see ffn.h.
#include "engine/cpu/ffn.h"

#include <algorithm>

#include "engine/cpu/arena.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"

namespace moe::cpu {

namespace {

constexpr int64_t kRowBlock = 32;  // weight rows per task

struct Task {
    size_t unit;
    int64_t r0, r1;
};

std::vector<Task> make_tasks(const std::vector<FfnUnit>& units, bool down, int64_t H) {
    std::vector<Task> tasks;
    for (size_t u = 0; u < units.size(); ++u) {
        if (units[u].n == 0) continue;
        const int64_t rows = down ? H : units[u].w->width();
        for (int64_t r = 0; r < rows; r += kRowBlock) tasks.push_back({u, r, std::min(rows, r + kRowBlock)});
    }
    return tasks;
}

}  // namespace

void run_ffn_units(const std::vector<FfnUnit>& units, int64_t H, ThreadPool& pool, Arena& arena) {
    // Hidden activations of each unit: [n, W].
    std::vector<float*> hidden(units.size());
    int64_t max_rows = 0;
    for (size_t u = 0; u < units.size(); ++u) {
        hidden[u] = arena.alloc<float>(static_cast<size_t>(units[u].n * units[u].w->width()));
        max_rows = std::max(max_rows, units[u].n);
    }

    const std::vector<Task> up_tasks = make_tasks(units, false, H);
    const int64_t scratch_per_thread = 2 * max_rows * kRowBlock;  // gate and up, [n, block] each
    float* scratch = arena.alloc<float>(static_cast<size_t>(pool.size() * scratch_per_thread));
    pool.parallel_for(static_cast<int64_t>(up_tasks.size()), [&](int64_t i, int thread) {
        const Task& t = up_tasks[static_cast<size_t>(i)];
        const FfnUnit& u = units[t.unit];
        const int64_t nb = t.r1 - t.r0, W = u.w->width();
        float* g = scratch + thread * scratch_per_thread;
        float* v = g + u.n * nb;
        matmul_rows(u.x, u.n, H, u.w->gate.row_slice(t.r0, nb), 0, nb, g, nb);
        matmul_rows(u.x, u.n, H, u.w->up.row_slice(t.r0, nb), 0, nb, v, nb);
        float* h = hidden[t.unit];
        for (int64_t r = 0; r < u.n; ++r) silu_mul(g + r * nb, v + r * nb, nb, h + r * W + t.r0);
    });

    const std::vector<Task> down_tasks = make_tasks(units, true, H);
    pool.parallel_for(static_cast<int64_t>(down_tasks.size()), [&](int64_t i, int) {
        const Task& t = down_tasks[static_cast<size_t>(i)];
        const FfnUnit& u = units[t.unit];
        matmul_rows(hidden[t.unit], u.n, u.w->width(), u.w->down, t.r0, t.r1, u.y, H);
    });
}

}  // namespace moe::cpu
