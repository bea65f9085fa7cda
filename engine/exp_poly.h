// e^x for x ≤ 0 as plain double operations the compiler vectorises, the same bits from every
// instruction set's code (engine/evaluate.cpp's log-probabilities, engine/sampler.cpp's
// softmax). A file that includes it is compiled with -ffp-contract=off (engine/CMakeLists.txt):
// a multiply and add fused into one rounding would change the bits.
#pragma once

#include <bit>
#include <cstdint>

namespace moe::exp_poly {

// e^x for x ≤ 0: x = k·ln 2 + r, |r| ≤ ln 2 / 2 (k rounded to nearest by adding 1.5·2^52), e^r
// by its Taylor polynomial to r^13 (the next term below 2^-57), scaled by 2^k built in the
// exponent bits; 0 below -708 (where 2^k would be subnormal), a NaN kept. Plain operations and
// selects by bit masks, which the compiler vectorises for every instruction set. Within an ulp
// of e^x rounded from long double (test_ablation).
inline double exp_le0(double x) {
    const bool nan = x != x;
    const bool tiny = x < -708.0;
    const uint64_t m_nan = -static_cast<uint64_t>(nan), m_tiny = -static_cast<uint64_t>(tiny);
    const double xs = std::bit_cast<double>(std::bit_cast<uint64_t>(x) & ~(m_nan | m_tiny));  // 0 where nan or tiny
    constexpr double kShift = 6755399441055744.0;                                             // 1.5 · 2^52
    const double t = xs * 1.4426950408889634 + kShift;
    const double k = t - kShift;
    const double r = (xs - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;  // 1/13!, then Horner down to 1/0!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const uint64_t k_bits = std::bit_cast<uint64_t>(t) - std::bit_cast<uint64_t>(kShift);  // k, two's complement
    const double e = p * std::bit_cast<double>((k_bits + 1023u) << 52);
    const uint64_t e_bits = std::bit_cast<uint64_t>(e) & ~m_tiny;
    return std::bit_cast<double>((e_bits & ~m_nan) | (std::bit_cast<uint64_t>(x) & m_nan));
}

// e[i] = exp_le0(x[i] + shift) for i < n: a loop the compiler vectorises.
inline void exp_block(const float* x, double shift, double* e, int n) {
    for (int i = 0; i < n; ++i) e[i] = exp_le0(static_cast<double>(x[i]) + shift);
}

}  // namespace moe::exp_poly
