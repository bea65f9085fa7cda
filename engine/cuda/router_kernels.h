// The router on the device: every token of a batch routed by engine/router_core.h (the
// function the CPU backend runs), one thread per token, with the layer's mask — except a
// plain step (softmax, greedy top-k, at most switched-off experts), which runs the same
// definition with one warp per token: lane-parallel scores and ranks, the sums in
// router_core's order, so the same experts in the same order. This host interface copies in
// and out; the forward pass calls launch::route on device buffers.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/router.h"

namespace moe::cuda {

struct RoutedBatch {
    std::vector<int32_t> experts;      // [T, k] rank order
    std::vector<float> weights;        // [T, k]
    std::vector<float> entropy;        // [T]
    std::vector<float> selected_mass;  // [T]
    std::vector<float> margin;         // [T]
};

// logits [T, E] on the host; p as for route_topk (its excluded and bias arrays on the host;
// random_key ignored): `random_keys` [T] gives each token's key for skip-random (empty when
// p.skip_random is 0). Throws moe::Error on a CUDA failure.
RoutedBatch route_tokens(const float* logits, int64_t n_tokens, const RouterParams& p,
                         const std::vector<uint64_t>& random_keys = {});

}  // namespace moe::cuda
