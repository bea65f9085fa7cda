// The routed experts' products of a step of many tokens in one launch on Hopper's warpgroup
// products (engine/cuda/grouped_wgmma.cu, compiled for compute 9.0a only): what
// launch::expert_products computes (tiles of 128 rows of an expert, or of 64, x as one BF16
// part or two), for MOEWB_CUDA_EXPERT_GEMM=wgmma on a device of compute 9.0. For the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda::launch {

// The shapes the kernel takes: K a multiple of 64, at most 256 experts (rows of x and of each
// W_e 16-byte aligned, asked of the caller as for launch::expert_products).
bool expert_wgmma_fit(int64_t K, int64_t N, int64_t n_expert);
// launch::expert_products's arguments, with tiles of tile_rows (128 or 64) rows of an expert:
// row_tiles counts tiles of that height. Returns the launch's error
// (cudaErrorNoKernelImageForDevice on a device other than compute 9.0).
cudaError_t expert_products_wgmma(const void* hi, const void* lo, int64_t K, const void* const* w_table, int64_t N,
                                  const int64_t* offsets, int64_t n_expert, int64_t row_tiles, float* y, int64_t ldy,
                                  cudaStream_t s, int tile_rows);

}  // namespace moe::cuda::launch
