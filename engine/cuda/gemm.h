// y = x · Wᵀ on the device with cuBLAS: W in BF16 as stored ([out, in], the checkpoint's
// layout), x rounded to BF16 (round to nearest even) for the tensor cores, products
// accumulated in f32, y in f32. Split: x is taken as hi + lo, both BF16 (lo the rounding of
// x - hi), and the two products summed: x to about 2⁻¹⁷ of itself for twice the tensor-core
// work. This host interface copies in and out; the forward pass calls launch::Blas on device
// buffers with one cuBLAS handle per stream.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::cuda {

// x [T, in] f32, w [out, in] BF16 bits; returns y [T, out]. Throws moe::Error on a CUDA or
// cuBLAS failure.
std::vector<float> linear_bf16(const std::vector<float>& x, const std::vector<uint16_t>& w, int64_t T, int64_t in,
                               int64_t out, bool split = false);

}  // namespace moe::cuda
