// How a backend runs the routed experts' products of a step of many tokens side by side (the
// CUDA backend's routed experts): which stream runs each piece of work, and the plan of a
// batched product over experts whose rows are padded to a common count. Written once, unit
// tested on the host (test_dispatch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace moe::dispatch {

// Pieces of work (their sizes), the largest first (ties in index order), each given to the
// stream with the least work so far (the lowest index on a tie); pieces of size 0 are left out:
// (piece, stream) in the order to launch them.
inline std::vector<std::pair<int64_t, int>> spread_work(const std::vector<int64_t>& work, int n_streams) {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < static_cast<int64_t>(work.size()); ++i)
        if (work[static_cast<size_t>(i)] > 0) order.push_back(i);
    auto size = [&](int64_t i) { return work[static_cast<size_t>(i)]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return size(a) > size(b); });
    std::vector<int64_t> load(static_cast<size_t>(std::max(n_streams, 1)), 0);
    std::vector<std::pair<int64_t, int>> out;
    out.reserve(order.size());
    for (const int64_t i : order) {
        const auto j = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
        out.emplace_back(i, j);
        load[static_cast<size_t>(j)] += size(i);
    }
    return out;
}

// The experts that have rows (offsets [E+1], as dispatch leaves them), spread by their rows.
inline std::vector<std::pair<int64_t, int>> spread_experts(const int64_t* offsets, int64_t n_expert, int n_streams) {
    std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(n_expert, 0)));
    for (int64_t e = 0; e < n_expert; ++e) rows[static_cast<size_t>(e)] = offsets[e + 1] - offsets[e];
    return spread_work(rows, n_streams);
}

// Experts whose rows are padded to the same count: one batched product (the same shape for
// every member, a pointer per member).
struct ExpertBatch {
    int64_t rows = 0;              // each member's padded rows, a multiple of the pad
    std::vector<int64_t> experts;  // ascending
};

// The padded layout of a step's gathered rows: expert e's rows at padded[e] ..
// padded[e] + (offsets[e+1] - offsets[e]) - 1, then zero rows up to padded[e+1]; each
// expert's segment is its rows rounded up to a multiple of `pad` (an expert without rows has
// none). The batches group the experts with rows by their padded count, the most rows
// (padded count × members) first, ties by the smaller count.
struct BatchPlan {
    std::vector<int64_t> padded;  // [E+1]
    std::vector<ExpertBatch> batches;
};

inline BatchPlan plan_batches(const int64_t* offsets, int64_t n_expert, int64_t pad) {
    BatchPlan plan;
    pad = std::max<int64_t>(pad, 1);
    plan.padded.assign(static_cast<size_t>(std::max<int64_t>(n_expert, 0) + 1), 0);
    std::map<int64_t, std::vector<int64_t>> by_rows;
    for (int64_t e = 0; e < n_expert; ++e) {
        const int64_t rows = offsets[e + 1] - offsets[e];
        const int64_t seg = (rows + pad - 1) / pad * pad;
        plan.padded[static_cast<size_t>(e + 1)] = plan.padded[static_cast<size_t>(e)] + seg;
        if (seg > 0) by_rows[seg].push_back(e);
    }
    for (auto& [rows, experts] : by_rows) plan.batches.push_back(ExpertBatch{rows, std::move(experts)});
    auto work = [](const ExpertBatch& b) { return b.rows * static_cast<int64_t>(b.experts.size()); };
    std::stable_sort(plan.batches.begin(), plan.batches.end(),
                     [&](const ExpertBatch& a, const ExpertBatch& b) { return work(a) > work(b); });
    return plan;
}

// The most padded rows a plan of `n_rows` rows over `n_expert` experts can have: only experts
// with rows are padded, at most one per row (a short prefill of a 256-expert model pads a
// few experts, not all of them).
inline int64_t padded_capacity(int64_t n_rows, int64_t n_expert, int64_t pad) {
    const int64_t padded_experts = std::min(std::max<int64_t>(n_expert, 0), std::max<int64_t>(n_rows, 0));
    return n_rows + padded_experts * (std::max<int64_t>(pad, 1) - 1);
}

}  // namespace moe::dispatch
