// The tile of a grouped product of the routed experts (one launch for all experts: the
// kernels of grouped_gemm.cu and grouped_wgmma.cu) that this block computes. For the .cu files.
#pragma once

#include <cstdint>

#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

constexpr int kGroupedMaxExperts = 256;  // DeepSeek-V3's routed experts

// The tiles of tile_m rows of one expert of a grouped product (engine/moe_dispatch.h), from the
// offsets [n_expert + 1] read once into shared memory: at(i) is tile i (expert -1 past the
// last), count() how many there are.
struct TileTable {
    const int64_t* offs;
    const int64_t* tiles;
    int n_expert;
    int64_t tile_m;
    __device__ dispatch::Tile at(int64_t i) const { return dispatch::tile_at(offs, tiles, n_expert, tile_m, i); }
    __device__ int64_t count() const { return tiles[n_expert]; }
};
// All threads of the block call it; it synchronises.
__device__ inline TileTable tile_table(const int64_t* offsets, int n_expert, int64_t tile_m) {
    __shared__ int64_t offs[kGroupedMaxExperts + 1], tiles[kGroupedMaxExperts + 1];
    for (int i = static_cast<int>(threadIdx.x); i <= n_expert; i += static_cast<int>(blockDim.x)) offs[i] = offsets[i];
    __syncthreads();
    if (threadIdx.x == 0) dispatch::expert_tiles(offs, n_expert, tile_m, tiles);
    __syncthreads();
    return {offs, tiles, n_expert, tile_m};
}

// Block `index`'s tile (the grid is sized from the host's counts: expert -1 past the last).
__device__ inline dispatch::Tile block_tile(const int64_t* offsets, int n_expert, int64_t tile_m, int64_t index) {
    return tile_table(offsets, n_expert, tile_m).at(index);
}

}  // namespace moe::cuda::launch
