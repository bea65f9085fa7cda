// Row-wise operations; see ops.h.
#include "engine/cpu/ops.h"

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
