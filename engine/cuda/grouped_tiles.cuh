// The tile of a grouped product of the routed experts (one launch for all experts: the
// kernels of grouped_gemm.cu and grouped_wgmma.cu) that this block computes. For the .cu files.
#pragma once

#include <cstdint>

#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

constexpr int kGroupedMaxExperts = 256;  // DeepSeek-V3's routed experts

// Block `index`'s tile of tile_m rows of one expert (engine/moe_dispatch.h: the tiles of a
// grouped product), from the offsets [n_expert + 1] read once into shared memory; expert -1
// past the last tile (the grid is sized from the host's counts). All threads of the block call
// it; it synchronises.
__device__ inline dispatch::Tile block_tile(const int64_t* offsets, int n_expert, int64_t tile_m, int64_t index) {
    __shared__ int64_t offs[kGroupedMaxExperts + 1], tiles[kGroupedMaxExperts + 1];
    for (int i = static_cast<int>(threadIdx.x); i <= n_expert; i += static_cast<int>(blockDim.x)) offs[i] = offsets[i];
    __syncthreads();
    if (threadIdx.x == 0) dispatch::expert_tiles(offs, n_expert, tile_m, tiles);
    __syncthreads();
    return dispatch::tile_at(offs, tiles, n_expert, tile_m, index);
}

}  // namespace moe::cuda::launch
