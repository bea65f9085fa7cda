// Which stream runs each expert's product when a backend runs them side by side on several
// streams (the CUDA backend's routed experts with BF16 activations): written once, unit tested
// on the host (test_dispatch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace moe::dispatch {

// The experts that have rows (offsets [E+1], as dispatch leaves them), the most rows first
// (ties in expert order), each given to the stream with the fewest rows so far (the lowest
// index on a tie): (expert, stream) in the order to launch them.
inline std::vector<std::pair<int64_t, int>> spread_experts(const int64_t* offsets, int64_t n_expert, int n_streams) {
    std::vector<int64_t> order;
    for (int64_t e = 0; e < n_expert; ++e)
        if (offsets[e + 1] > offsets[e]) order.push_back(e);
    auto rows = [&](int64_t e) { return offsets[e + 1] - offsets[e]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return rows(a) > rows(b); });
    std::vector<int64_t> load(static_cast<size_t>(std::max(n_streams, 1)), 0);
    std::vector<std::pair<int64_t, int>> out;
    out.reserve(order.size());
    for (const int64_t e : order) {
        const auto j = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
        out.emplace_back(e, j);
        load[static_cast<size_t>(j)] += rows(e);
    }
    return out;
}

}  // namespace moe::dispatch
