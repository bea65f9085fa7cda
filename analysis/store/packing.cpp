// Little-endian packing of the store's arrays; see packing.h.
#include "analysis/store/packing.h"

#include <algorithm>
#include <array>

#include "engine/error.h"
#include "engine/tensor.h"

namespace moe::analysis::packing {

namespace {

template <typename Out, typename In, typename F>
void pack(std::span<const In> in, std::vector<uint8_t>& out, F convert) {
    out.resize(in.size() * sizeof(Out));
    uint8_t* p = out.data();
    for (size_t i = 0; i < in.size(); ++i) {
        const Out v = to_le(convert(in[i]));
        std::memcpy(p + i * sizeof(Out), &v, sizeof(Out));
    }
}

template <typename Stored, typename Out, typename F>
void unpack(std::span<const uint8_t> blob, size_t count, std::vector<Out>& out, const std::string& what, F convert) {
    if (blob.size() != count * sizeof(Stored)) {
        throw_input_error(what, "packed array of " + std::to_string(blob.size()) + " bytes, expected " +
                                    std::to_string(count) + " elements of " + std::to_string(sizeof(Stored)) +
                                    " bytes (damaged store?)");
    }
    out.resize(count);
    for (size_t i = 0; i < count; ++i) {
        Stored v;
        std::memcpy(&v, blob.data() + i * sizeof(Stored), sizeof(Stored));
        out[i] = convert(to_le(v));
    }
}

}  // namespace

void pack_u8(std::span<const int32_t> in, std::vector<uint8_t>& out) {
    pack<uint8_t>(in, out, [](int32_t e) {
        MOE_ASSERT(e >= 0 && e <= 0xff);
        return static_cast<uint8_t>(e);
    });
}

void pack_u16(std::span<const int32_t> in, std::vector<uint8_t>& out) {
    pack<uint16_t>(in, out, [](int32_t e) {
        MOE_ASSERT(e >= 0 && e <= 0xffff);
        return static_cast<uint16_t>(e);
    });
}

void pack_f16(std::span<const float> in, std::vector<uint8_t>& out) {
    pack<uint16_t>(in, out, [](float f) { return f32_to_f16(f); });
}

void pack_f32(std::span<const float> in, std::vector<uint8_t>& out) {
    pack<float>(in, out, [](float f) { return f; });
}

void pack_i32(std::span<const int32_t> in, std::vector<uint8_t>& out) {
    pack<int32_t>(in, out, [](int32_t v) { return v; });
}

void unpack_u8(std::span<const uint8_t> blob, size_t count, std::vector<uint16_t>& out, const std::string& what) {
    unpack<uint8_t>(blob, count, out, what, [](uint8_t v) { return static_cast<uint16_t>(v); });
}

void unpack_u16(std::span<const uint8_t> blob, size_t count, std::vector<uint16_t>& out, const std::string& what) {
    unpack<uint16_t>(blob, count, out, what, [](uint16_t v) { return v; });
}

void unpack_f16(std::span<const uint8_t> blob, size_t count, std::vector<float>& out, const std::string& what) {
    unpack<uint16_t>(blob, count, out, what, [](uint16_t v) { return f16_to_f32(v); });
}

void unpack_f32(std::span<const uint8_t> blob, size_t count, std::vector<float>& out, const std::string& what) {
    unpack<float>(blob, count, out, what, [](float v) { return v; });
}

void unpack_i32(std::span<const uint8_t> blob, std::vector<int32_t>& out, const std::string& what) {
    if (blob.size() % 4 != 0)
        throw_input_error(what, "token id array of " + std::to_string(blob.size()) +
                                    " bytes is not a multiple of 4 (damaged store?)");
    unpack<int32_t>(blob, blob.size() / 4, out, what, [](int32_t v) { return v; });
}

float round_to_f16(float v) {
    return f16_to_f32(f32_to_f16(v));
}

}  // namespace moe::analysis::packing
