// How the decode stream kernel (decode_stream.cu, MOEWB_CUDA_DECODE_KERNEL=stream) cuts a
// stage's weights into tiles, each one slot of its ring in shared memory: plain C++ that host
// and device share (MOE_HD), so that the tiling is unit tested on the host (test_stream_plan).
//
// A part is a matrix whose rows a stage reads, in one of five forms:
//   plain   rows one after another, a warp a row;
//   pairs   rows o and o + half of each head of 2·half rows (a rotated part: the query's or
//           the key's), a tile a run of pairs within one head;
//   gated   row f of two matrices (gate and up), a tile a run of f;
//   routed  row f of slot s's expert's gate and up, a tile a run of f of one slot;
//   combine output row i of each slot's expert's down matrix, a tile one i (a piece a slot).
// A tile holds at most eight rows (a warp each) and at most kSlotBytes bytes.
//
// The kernel finds a tile's part and rows for every tile it asks for and every tile it makes:
// from the counts prepare() works out once on the host (a part's tiles, a stage's first tile of
// each part), with one division, where the counts from scratch take a handful.
#pragma once

#include <cstdint>

#include "engine/router_core.h"  // MOE_HD

namespace moe::cuda::stream_plan {

constexpr int64_t kSlotBytes = 32 * 1024;
constexpr int kTileWarps = 8;
constexpr int kMaxParts = 3;

enum class Kind : int { plain, pairs, gated, routed, combine };

struct Part {
    Kind kind = Kind::plain;
    int64_t items = 0;      // plain: rows; pairs: pairs; gated, routed: rows of each matrix; combine: output rows
    int64_t row_bytes = 0;  // one row's bytes (combine: one slot's row)
    int64_t half = 0;       // pairs: half a head's rows
    int64_t k = 1;          // routed, combine: the step's slots
    // Set by prepare(): per_tile(), run_tiles() and tiles() of the part.
    int64_t per = 0, per_run = 0, n_tiles = 0;
};

// Items a tile of p takes (0: a row of p does not fit a slot).
MOE_HD inline int64_t per_tile(const Part& p) {
    if (p.row_bytes <= 0) return 0;
    const int64_t rows = kSlotBytes / p.row_bytes;
    switch (p.kind) {
        case Kind::plain:
            return rows < kTileWarps ? rows : kTileWarps;
        case Kind::pairs:
        case Kind::gated:
        case Kind::routed:
            return rows / 2 < kTileWarps / 2 ? rows / 2 : kTileWarps / 2;
        case Kind::combine:
            return p.k >= 1 && p.k <= kTileWarps && p.k * p.row_bytes <= kSlotBytes ? 1 : 0;
    }
    return 0;
}

// Whether the stream kernel can tile p: a row's bytes a multiple of 16 (the bulk copies'),
// at least one item a tile, whole heads of pairs.
MOE_HD inline bool fits(const Part& p) {
    if (p.items < 0 || p.row_bytes % 16 != 0 || per_tile(p) < 1) return false;
    if (p.kind == Kind::pairs && (p.half < 1 || p.items % p.half != 0)) return false;
    return p.k >= 1;
}

// Tiles of one head (pairs), one slot (routed) or the whole part (the others).
MOE_HD inline int64_t run_tiles(const Part& p) {
    const int64_t n = per_tile(p), run = p.kind == Kind::pairs ? p.half : p.items;
    return n > 0 ? (run + n - 1) / n : 0;
}

MOE_HD inline int64_t tiles(const Part& p) {
    switch (p.kind) {
        case Kind::pairs:
            return p.half > 0 ? p.items / p.half * run_tiles(p) : 0;
        case Kind::routed:
            return p.k * run_tiles(p);
        default:
            return run_tiles(p);
    }
}

// Tile t of p: its slot (routed: the slot; else 0), first item and how many.
struct Span {
    int64_t slot, first, count;
};
// (n: per_tile(p); per: run_tiles(p).)
MOE_HD inline Span span_of(const Part& p, int64_t t, int64_t n, int64_t per) {
    const int64_t run_len = p.kind == Kind::pairs ? p.half : p.items;
    const int64_t run = p.kind == Kind::pairs || p.kind == Kind::routed ? t / per : 0, in = t - run * per;
    const int64_t first = in * n, left = run_len - first;
    Span s{p.kind == Kind::routed ? run : 0, (p.kind == Kind::pairs ? run * p.half : 0) + first, left < n ? left : n};
    return s;
}
MOE_HD inline Span span(const Part& p, int64_t t) {
    return span_of(p, t, per_tile(p), run_tiles(p));
}

// A stage: its parts, tiled one after another.
struct Stage {
    Part part[kMaxParts];
    int n = 0;
    int64_t start[kMaxParts + 1] = {};  // set by prepare(): part j's first tile; start[n] the stage's tiles
};

MOE_HD inline int64_t tiles(const Stage& s) {
    int64_t total = 0;
    for (int j = 0; j < s.n; ++j) total += tiles(s.part[j]);
    return total;
}

// Stage tile t as (part j, its tile).
MOE_HD inline void locate(const Stage& s, int64_t t, int& j, int64_t& local) {
    j = 0;
    while (j + 1 < s.n && t >= tiles(s.part[j])) t -= tiles(s.part[j++]);
    local = t;
}

// The counts the kernel reads (the parts' per, per_run and n_tiles, the stage's start).
inline void prepare(Stage& s) {
    int64_t at = 0;
    for (int j = 0; j < s.n; ++j) {
        Part& p = s.part[j];
        p.per = per_tile(p);
        p.per_run = run_tiles(p);
        p.n_tiles = tiles(p);
        s.start[j] = at;
        at += p.n_tiles;
    }
    for (int j = s.n; j <= kMaxParts; ++j) s.start[j] = at;
}

// After prepare(): the stage's tiles, tile t as (part j, its tile), and a part's tile t.
MOE_HD inline int64_t prepared_tiles(const Stage& s) {
    return s.start[s.n];
}
MOE_HD inline void prepared_locate(const Stage& s, int64_t t, int& j, int64_t& local) {
    j = 0;
    while (j + 1 < s.n && t >= s.start[j + 1]) ++j;
    local = t - s.start[j];
}
MOE_HD inline Span prepared_span(const Part& p, int64_t t) {
    return span_of(p, t, p.per, p.per_run);
}

// Tiles of a stage of n that block b of nb takes: b, b + nb, … (blocks past n take none).
MOE_HD inline int64_t block_tiles(int64_t n, int64_t b, int64_t nb) {
    return n > b ? (n - b + nb - 1) / nb : 0;
}

}  // namespace moe::cuda::stream_plan
