// The index arithmetic of an MoE layer's dispatch, written once for every backend (plain
// pointers, no allocation; __host__ __device__ under nvcc): the (token, rank) slots of a
// batch grouped by expert — a counting sort, stable in slot order — and the tiles of a
// grouped GEMM over those groups. The CPU backend (engine/cpu/moe_block.cpp) runs it as is;
// a device runs the same functions per thread or per block.
//
//   slot s = t·k + r: token t's rank-r expert experts[s]; dropped slots (drop mode) take no row.
//   offsets [E+1]: rows of expert e are offsets[e] .. offsets[e+1]-1 of the gathered matrix.
//   rows [T·k]: the gathered row of each slot, -1 when dropped; row_slot: the inverse.
//   tiles [E+1]: expert e's M-tiles of `tile_m` rows are tiles[e] .. tiles[e+1]-1.
#pragma once

#include <stdint.h>

#include "engine/router_core.h"  // MOE_HD

namespace moe::dispatch {

MOE_HD inline bool slot_dropped(const int32_t* experts, const uint8_t* dropped, int64_t s) {
    return dropped && dropped[experts[s]];
}

// offsets[0..E]: exclusive prefix sums of the rows per expert.
MOE_HD inline void expert_offsets(const int32_t* experts, int64_t n_slots, const uint8_t* dropped, int64_t n_expert,
                                  int64_t* offsets) {
    for (int64_t e = 0; e <= n_expert; ++e) offsets[e] = 0;
    for (int64_t s = 0; s < n_slots; ++s)
        if (!slot_dropped(experts, dropped, s)) ++offsets[experts[s] + 1];
    for (int64_t e = 0; e < n_expert; ++e) offsets[e + 1] += offsets[e];
}

// rows[s]: offsets[e] + the number of earlier slots of the same expert (stable); -1 when
// dropped. cursor [E] is scratch.
MOE_HD inline void slot_rows(const int32_t* experts, int64_t n_slots, const uint8_t* dropped, const int64_t* offsets,
                             int64_t n_expert, int64_t* cursor, int64_t* rows) {
    for (int64_t e = 0; e < n_expert; ++e) cursor[e] = offsets[e];
    for (int64_t s = 0; s < n_slots; ++s) rows[s] = slot_dropped(experts, dropped, s) ? -1 : cursor[experts[s]]++;
}

// row_slot[rows[s]] = s for every slot with a row: which token (row_slot / k) a gathered row
// copies and where its result goes back.
MOE_HD inline void row_slots(const int64_t* rows, int64_t n_slots, int64_t* row_slot) {
    for (int64_t s = 0; s < n_slots; ++s)
        if (rows[s] >= 0) row_slot[rows[s]] = s;
}

MOE_HD inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// tiles[0..E]: exclusive prefix sums of ceil(rows of e / tile_m).
MOE_HD inline void expert_tiles(const int64_t* offsets, int64_t n_expert, int64_t tile_m, int64_t* tiles) {
    tiles[0] = 0;
    for (int64_t e = 0; e < n_expert; ++e) tiles[e + 1] = tiles[e] + ceil_div(offsets[e + 1] - offsets[e], tile_m);
}

// The most tiles of tile_m rows (expert_tiles) n_rows rows over n_expert experts can make,
// however they are routed: each expert's ceil(n_e / tile_m) summed is at most
// floor((n_rows + n_expert · (tile_m − 1)) / tile_m). What a launch sized before the counts
// reach the host takes (its blocks past the last tile do nothing).
MOE_HD inline int64_t max_expert_tiles(int64_t n_rows, int64_t n_expert, int64_t tile_m) {
    return (n_rows + n_expert * (tile_m - 1)) / tile_m;
}

struct Tile {
    int64_t expert = -1;  // -1: past the last tile
    int64_t row0 = 0;     // first gathered row
    int64_t rows = 0;     // 1 .. tile_m
};

// The segment that holds item i of segments starts[0..n] (exclusive prefix sums, 0 ≤ i <
// starts[n]): the last e with starts[e] <= i, by binary search. A segment without items has
// starts[e] == starts[e+1], so the one after it, holding i, is the last to qualify.
MOE_HD inline int64_t segment_of(const int64_t* starts, int64_t n, int64_t i) {
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        const int64_t mid = (lo + hi) / 2;
        if (starts[mid] <= i)
            lo = mid;
        else hi = mid;
    }
    return lo;
}

// The tile with flat index `i` (0 ≤ i < tiles[E]): the expert by binary search over tiles.
MOE_HD inline Tile tile_at(const int64_t* offsets, const int64_t* tiles, int64_t n_expert, int64_t tile_m, int64_t i) {
    Tile t;
    if (i < 0 || i >= tiles[n_expert]) return t;
    const int64_t lo = segment_of(tiles, n_expert, i);
    t.expert = lo;
    t.row0 = offsets[lo] + (i - tiles[lo]) * tile_m;
    const int64_t end = offsets[lo + 1];
    t.rows = end - t.row0 < tile_m ? end - t.row0 : tile_m;
    return t;
}

// Padded layouts (engine/expert_streams.h, plan_batches): padded [E+1] gives each expert's rows
// a segment of its own, its rows first, then rows of zeros.
//
// Where gathered row `row` of expert e lies in the padded layout.
MOE_HD inline int64_t padded_row(const int64_t* offsets, const int64_t* padded, int64_t e, int64_t row) {
    return row - offsets[e] + padded[e];
}

// The gathered row that padded row `p` (0 ≤ p < padded[E]) holds, -1 for a row of zeros.
MOE_HD inline int64_t row_of_padded(const int64_t* offsets, const int64_t* padded, int64_t n_expert, int64_t p) {
    const int64_t e = segment_of(padded, n_expert, p);
    const int64_t i = p - padded[e];
    return i < offsets[e + 1] - offsets[e] ? offsets[e] + i : -1;
}

// The stacked layout of a padded layout, for products whose activations are split in two
// parts (hi and lo, each rounded to 16 bits): expert e's segment doubled, at 2·padded[e], its
// padded rows' hi parts first, then their lo parts in the same order, so that one product over
// the segment's 2·(padded[e+1] − padded[e]) rows makes both parts' products. Padded row p of
// expert e has its hi part at row stacked_hi(padded, e, p) and its lo part at
// stacked_lo(padded, e, p); the layout has 2·padded[E] rows.
MOE_HD inline int64_t stacked_hi(const int64_t* padded, int64_t e, int64_t p) {
    return p + padded[e];
}
MOE_HD inline int64_t stacked_lo(const int64_t* padded, int64_t e, int64_t p) {
    return p + padded[e + 1];
}

}  // namespace moe::dispatch
