// Element-type helpers and conversions for stored tensors; see tensor.h.
#include "engine/tensor.h"

#include <cmath>

#include "engine/error.h"

namespace moe {

size_t dtype_size(DType t) {
    switch (t) {
        case DType::f32: return 4;
        case DType::f16: return 2;
        case DType::bf16: return 2;
        case DType::f8_e4m3: return 1;
    }
    return 0;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "F32";
        case DType::f16: return "F16";
        case DType::bf16: return "BF16";
        case DType::f8_e4m3: return "F8_E4M3";
    }
    return "?";
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            mant &= 0x3ffu;
            bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | mant << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    uint32_t sign = (bits >> 16) & 0x8000u;
    int32_t exp = static_cast<int32_t>((bits >> 23) & 0xffu);
    uint32_t mant = bits & 0x7fffffu;
    if (exp == 255) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
    int32_t e = exp - 127 + 15;
    if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return static_cast<uint16_t>(sign);
        mant |= 0x800000u;
        uint32_t shift = static_cast<uint32_t>(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) ++half;
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t half = sign | static_cast<uint32_t>(e) << 10 | mant >> 13;
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into exponent: correct
    return static_cast<uint16_t>(half);
}

namespace {

float decode_e4m3(uint8_t b) {
    const float sign = (b & 0x80u) ? -1.0f : 1.0f;
    const int exp = (b >> 3) & 0xf;
    const int mant = b & 0x7;
    if (exp == 0xf && mant == 0x7) return std::nanf("");
    if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);  // subnormal: m/8 · 2^-6
    return sign * std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
}

struct E4m3Table {
    float v[256];
    E4m3Table() {
        for (int i = 0; i < 256; ++i) v[i] = decode_e4m3(static_cast<uint8_t>(i));
    }
};

const E4m3Table& e4m3_table() {
    static const E4m3Table t;
    return t;
}

}  // namespace

float f8_e4m3_to_f32(uint8_t b) { return e4m3_table().v[b]; }

uint8_t f32_to_f8_e4m3(float f) {
    if (std::isnan(f)) return 0x7f;
    const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
    const float a = std::fabs(f);
    if (a >= 448.0f) return static_cast<uint8_t>(sign | 0x7e);  // saturate (e4m3fn has no infinity)
    int e = 0;
    std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1)
    int E = e - 1;      // a = 1.x · 2^E
    if (a == 0.0f || E < -6) {
        // Subnormal: multiples of 2^-9, rounded to nearest even; 8 · 2^-9 is the smallest normal.
        const int n = static_cast<int>(std::nearbyint(std::ldexp(a, 9)));
        return static_cast<uint8_t>(sign | n);  // n == 8 encodes 2^-6 as exponent 1, mantissa 0
    }
    int r = static_cast<int>(std::nearbyint((std::ldexp(a, -E) - 1.0f) * 8.0f));
    if (r == 8) {
        r = 0;
        ++E;
    }
    const int code = ((E + 7) << 3) | r;
    return static_cast<uint8_t>(sign | std::min(code, 0x7e));
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

std::string TensorView::shape_str() const { return shape_to_string(shape); }

void tensor_to_f32(const TensorView& t, int64_t offset, int64_t n, float* out) {
    MOE_ASSERT(offset >= 0 && offset + n <= t.numel());
    switch (t.dtype) {
        case DType::f32:
            std::memcpy(out, static_cast<const float*>(t.data) + offset, static_cast<size_t>(n) * 4);
            break;
        case DType::bf16: {
            const uint16_t* p = static_cast<const uint16_t*>(t.data) + offset;
            for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
            break;
        }
        case DType::f16: {
            const uint16_t* p = static_cast<const uint16_t*>(t.data) + offset;
            for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
            break;
        }
        case DType::f8_e4m3: {
            const uint8_t* p = static_cast<const uint8_t*>(t.data) + offset;
            for (int64_t i = 0; i < n; ++i) out[i] = f8_e4m3_to_f32(p[i]);
            break;
        }
    }
}

}  // namespace moe
