// Tensor vocabulary of the engine: element types as stored in checkpoints and a
// non-owning view of a stored tensor (usually memory-mapped checkpoint bytes).
// Shape legend used in comments across the engine: T tokens, H hidden size, V vocab,
// nh heads, nkv kv heads, hd head dim, E routed experts, K experts per token,
// F expert FFN width, I dense FFN width. Shapes are row-major, outermost first,
// in the checkpoint's own [out_features, in_features] order for linear weights.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace moe {

// f8_e4m3: float8_e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no
// infinities; 0x7f/0xff are NaN; largest finite 448), as DeepSeek-V3's FP8 checkpoints
// store their linear weights, each with a float32 scale per 128×128 block.
enum class DType : uint8_t { f32, f16, bf16, f8_e4m3 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "F16", "BF16", "F8_E4M3"

// BF16 is the upper half of an IEEE f32: widening is exact.
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Round to nearest even (NaN stays NaN), as PyTorch and the safetensors writers do.
inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
// Exact widening of a float8_e4m3fn byte (a table of the 256 values).
float f8_e4m3_to_f32(uint8_t b);
// Round to nearest even, saturating to ±448 (NaN stays NaN).
uint8_t f32_to_f8_e4m3(float f);
uint16_t f32_to_f16(float f);

// A stored tensor: its name, element type, shape and bytes (not owned).
struct TensorView {
    std::string name;
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
    size_t nbytes = 0;

    int64_t numel() const;
    int64_t dim(size_t i) const { return shape.at(i); }
    std::string shape_str() const;  // "[64, 1024]"
};

std::string shape_to_string(const std::vector<int64_t>& shape);

// Widen `n` elements starting at element `offset` of `t` into f32 (an FP8 tensor's raw
// values, without its block scales).
void tensor_to_f32(const TensorView& t, int64_t offset, int64_t n, float* out);

}  // namespace moe
