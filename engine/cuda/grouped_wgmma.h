// The routed experts' products of a step of many tokens in one launch on Hopper's warpgroup
// products fed by its tensor memory accelerator (engine/cuda/grouped_wgmma.cu, compiled for
// compute 9.0a only): what launch::expert_products computes (tiles of 128 rows of an expert, x
// as one BF16 part or two), for MOEWB_CUDA_EXPERT_GEMM=wgmma on a device of compute 9.0. For
// the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace moe::cuda::launch {

// Bytes of one expert's tensor map (CUtensorMap).
constexpr int kExpertMapBytes = 128;

// The shapes the kernel takes: K a multiple of 64, at most 256 experts (rows of x and of each
// W_e 16-byte aligned, asked of the caller as for launch::expert_products).
bool expert_wgmma_fit(int64_t K, int64_t N, int64_t n_expert);
// The TMA's tensor maps of the experts' weights w[e] (BF16 [N, K] each), kExpertMapBytes each
// into maps_host (aligned to 64 bytes), for
// the caller to copy to the device (aligned to 64 bytes). False where the driver has no tensor
// maps or a matrix is not one they describe (K not a multiple of 64, a base not on 16 bytes).
bool encode_expert_maps(const std::vector<const void*>& w, int64_t K, int64_t N, void* maps_host);
// launch::expert_products's arguments with the weights as their maps (encode_expert_maps, on
// the device) and x's rows (x_rows: x is [x_rows, K], the offsets within it). Returns the
// launch's error (cudaErrorNoKernelImageForDevice on a device other than compute 9.0;
// cudaErrorInvalidValue where x is not one the TMA takes).
cudaError_t expert_products_wgmma(const void* hi, const void* lo, int64_t K, const void* w_maps, int64_t N,
                                  const int64_t* offsets, int64_t n_expert, int64_t row_tiles, int64_t x_rows, float* y,
                                  int64_t ldy, cudaStream_t s);

}  // namespace moe::cuda::launch
