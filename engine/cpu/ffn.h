// SiLU-gated feed-forward units run together: down(silu(gate(x)) ⊙ up(x)). A dense
// layer is one unit over all tokens; an MoE layer is one unit per selected expert over
// the tokens routed to it, plus the shared experts as one unit over all tokens. All
// units' work is split into (unit, row block) tasks of one parallel loop per phase, so
// experts with few tokens and the wide shared unit balance across threads.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/matmul.h"

namespace moe::cpu {

class ThreadPool;
class Arena;

struct FfnWeights {
    WeightMatrix gate, up, down;  // [W, H], [W, H], [H, W] for width W
    int64_t width() const { return gate.rows; }
};

struct FfnUnit {
    const FfnWeights* w = nullptr;
    const float* x = nullptr;  // [n, H] input rows (row stride H)
    float* y = nullptr;        // [n, H] output rows (row stride H), overwritten
    int64_t n = 0;
};

// Runs every unit; hidden activations go to the arena.
void run_ffn_units(const std::vector<FfnUnit>& units, int64_t H, ThreadPool& pool, Arena& arena);

}  // namespace moe::cpu
