// The tiling arithmetic of the CUDA backend's attention (engine/cuda/attention_kernels.cu),
// written once for the host and the device so that it is unit tested on the host
// (test_dispatch): which key tiles a tile of queries reads in the tiled prefill, and which
// positions each split of a decode step takes.
#pragma once

#include <stdint.h>

#include "engine/router_core.h"  // MOE_HD

namespace moe::attention_tiles {

// Queries q0 .. q0+bq-1 of a step of T queries at positions pos0 .. pos0+T-1 see keys 0 up to
// the last of them: this many tiles of bk keys, the last one partial.
MOE_HD inline int64_t key_tiles(int64_t q0, int64_t bq, int64_t T, int64_t pos0, int64_t bk) {
    const int64_t last_query = q0 + bq < T ? q0 + bq : T;
    return (pos0 + last_query - 1 + bk) / bk;
}

// Whether any of the queries q_first .. q_first+rows-1 (those before T) sees a key of the tile
// that starts at key k0: the earliest of them sees keys 0 .. pos0 + q_first, the latest up to
// pos0 + its index. A tile no query of a group sees changes nothing of the group's online
// softmax (its scores are all masked), so the group's products for it may be skipped.
MOE_HD inline bool rows_see_tile(int64_t q_first, int64_t rows, int64_t T, int64_t pos0, int64_t k0) {
    const int64_t last = q_first + rows < T ? q_first + rows - 1 : T - 1;
    return q_first < T && k0 <= pos0 + last;
}

// One decode query sees `visible` positions, split into n_splits runs of equal length (the
// last ones shorter or empty): split s takes [begin, end).
struct Range {
    int64_t begin, end;
};
MOE_HD inline int64_t split_length(int64_t visible, int64_t n_splits) { return (visible + n_splits - 1) / n_splits; }
MOE_HD inline Range split_range(int64_t visible, int64_t n_splits, int64_t s) {
    const int64_t len = split_length(visible, n_splits), begin = s * len;
    const int64_t end = begin + len < visible ? begin + len : visible;
    return {begin, end > begin ? end : begin};
}

}  // namespace moe::attention_tiles
