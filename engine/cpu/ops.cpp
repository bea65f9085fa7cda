// Row-wise operations; see ops.h.
#include "engine/cpu/ops.h"

#include <algorithm>
#include <cmath>

namespace moe::cpu {

void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* y) {
    for (int64_t t = 0; t < T; ++t) {
        const float* xr = x + t * n;
        float* yr = y + t * n;
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * w[i];
    }
}

RopeTables make_rope_tables(int64_t pos0, int64_t T, int64_t hd, double base, double position_divisor) {
    RopeTables r;
    r.half = hd / 2;
    r.cos.resize(static_cast<size_t>(T * r.half));
    r.sin.resize(static_cast<size_t>(T * r.half));
    std::vector<float> inv_freq(static_cast<size_t>(r.half));
    for (int64_t j = 0; j < r.half; ++j)
        inv_freq[j] = 1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * j) / static_cast<float>(hd));
    for (int64_t t = 0; t < T; ++t) {
        float pos = static_cast<float>(pos0 + t);
        if (position_divisor != 1.0) pos = pos / static_cast<float>(position_divisor);
        for (int64_t j = 0; j < r.half; ++j) {
            const float a = pos * inv_freq[j];
            r.cos[t * r.half + j] = std::cos(a);
            r.sin[t * r.half + j] = std::sin(a);
        }
    }
    return r;
}

RopeTables make_rope_tables(int64_t pos0, int64_t T, const std::vector<float>& inv_freq, double position_divisor,
                            float magnitude) {
    RopeTables r;
    r.half = static_cast<int64_t>(inv_freq.size());
    r.cos.resize(static_cast<size_t>(T * r.half));
    r.sin.resize(static_cast<size_t>(T * r.half));
    for (int64_t t = 0; t < T; ++t) {
        float pos = static_cast<float>(pos0 + t);
        if (position_divisor != 1.0) pos = pos / static_cast<float>(position_divisor);
        for (int64_t j = 0; j < r.half; ++j) {
            const float a = pos * inv_freq[static_cast<size_t>(j)];
            r.cos[t * r.half + j] = std::cos(a) * magnitude;
            r.sin[t * r.half + j] = std::sin(a) * magnitude;
        }
    }
    return r;
}

std::vector<float> yarn_inv_freq(int64_t dim, double base, double factor, int64_t original_max_position,
                                 double beta_fast, double beta_slow) {
    const double pi = 3.14159265358979323846;
    auto correction_dim = [&](double rotations) {
        return static_cast<double>(dim) * std::log(static_cast<double>(original_max_position) / (rotations * 2 * pi)) /
               (2 * std::log(base));
    };
    const double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(beta_slow)), static_cast<double>(dim - 1));
    if (low == high) high += 0.001;  // avoid a division by zero, as published
    std::vector<float> inv(static_cast<size_t>(dim / 2));
    for (int64_t j = 0; j < dim / 2; ++j) {
        const double extra = 1.0 / std::pow(base, static_cast<double>(2 * j) / static_cast<double>(dim));
        const double inter = extra / factor;
        const double ramp = std::clamp((static_cast<double>(j) - low) / (high - low), 0.0, 1.0);
        inv[static_cast<size_t>(j)] = static_cast<float>(inter * ramp + extra * (1 - ramp));
    }
    return inv;
}

void apply_rope_pairs(float* x, int64_t T, int64_t n_heads, int64_t head_stride, int64_t dim, int64_t ld,
                      const RopeTables& r) {
    const int64_t half = dim / 2;
    for (int64_t t = 0; t < T; ++t) {
        const float* c = r.cos.data() + t * r.half;
        const float* s = r.sin.data() + t * r.half;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + t * ld + h * head_stride;
            for (int64_t j = 0; j < half; ++j) {
                const float a = v[2 * j], b = v[2 * j + 1];
                v[2 * j] = a * c[j] - b * s[j];
                v[2 * j + 1] = a * s[j] + b * c[j];
            }
        }
    }
}

void apply_rope_halves(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld, const RopeTables& r) {
    const int64_t half = hd / 2;
    for (int64_t t = 0; t < T; ++t) {
        const float* c = r.cos.data() + t * half;
        const float* s = r.sin.data() + t * half;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + t * ld + h * hd;
            for (int64_t j = 0; j < half; ++j) {
                const float x1 = v[j], x2 = v[j + half];
                v[j] = x1 * c[j] - x2 * s[j];
                v[j + half] = x2 * c[j] + x1 * s[j];
            }
        }
    }
}

void silu_mul(const float* g, const float* u, int64_t n, float* h) {
    for (int64_t i = 0; i < n; ++i) h[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void softmax_row(float* x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace moe::cpu
