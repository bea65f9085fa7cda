// The values of random weights (engine/random_weights.h), one element at a time, written once
// for the host and the device: element i of a tensor with seed s is a function of (s, i) alone
// (splitmix64 at counter i + 1), so the CUDA backend generates on the device exactly the bytes
// the CPU backend makes on the host. Plain integer and IEEE single arithmetic, each operation
// rounded on its own (no fused multiply-add), so both sides round alike.
#pragma once

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define MOE_RV_HD __host__ __device__
#else
#define MOE_RV_HD
#endif

namespace moe::random_values {

MOE_RV_HD inline uint64_t splitmix64_at(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// offset + scale · u with u uniform in [-1, 1) (23 random bits).
MOE_RV_HD inline float value(uint64_t seed, uint64_t i, float scale, float offset) {
    const uint64_t r = splitmix64_at(seed, i);
    const float u = static_cast<float>(static_cast<double>(r >> 40) / 8388608.0) - 1.0f;
#if defined(__CUDA_ARCH__)
    return __fadd_rn(offset, __fmul_rn(scale, u));
#else
    volatile float product = scale * u;  // kept apart from the addition: no contraction
    return offset + product;
#endif
}

// Round to nearest even; a NaN stays a (quiet) NaN. The same as moe::f32_to_bf16.
MOE_RV_HD inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(bits >> 16);
}

}  // namespace moe::random_values
