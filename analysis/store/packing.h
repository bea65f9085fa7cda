// Packed little-endian arrays of the routing store's BLOB columns (docs/store.md):
// expert ids uint8 or uint16, gate weights IEEE binary16 (or float32), entropy binary16 or
// float32, token ids int32. Packing checks ranges (an expert id must fit its width); unpacking checks that a
// blob's size is a whole number of elements of the expected count, naming the row.
// Private to analysis/.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace moe::analysis::packing {

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big);

template <typename T>
inline T to_le(T v) {
    if constexpr (std::endian::native == std::endian::big) {
        auto bytes = std::bit_cast<std::array<uint8_t, sizeof(T)>>(v);
        std::reverse(bytes.begin(), bytes.end());
        return std::bit_cast<T>(bytes);
    }
    return v;
}

void pack_u8(std::span<const int32_t> in, std::vector<uint8_t>& out);   // expert ids, E <= 256
void pack_u16(std::span<const int32_t> in, std::vector<uint8_t>& out);  // expert ids
void pack_f16(std::span<const float> in, std::vector<uint8_t>& out);    // gate weights
void pack_f32(std::span<const float> in, std::vector<uint8_t>& out);    // entropy
void pack_i32(std::span<const int32_t> in, std::vector<uint8_t>& out);  // token ids

// `what` names the row in errors ("run 3, document 17, layer 2, experts").
void unpack_u8(std::span<const uint8_t> blob, size_t count, std::vector<uint16_t>& out, const std::string& what);
void unpack_u16(std::span<const uint8_t> blob, size_t count, std::vector<uint16_t>& out, const std::string& what);
void unpack_f16(std::span<const uint8_t> blob, size_t count, std::vector<float>& out, const std::string& what);
void unpack_f32(std::span<const uint8_t> blob, size_t count, std::vector<float>& out, const std::string& what);
void unpack_i32(std::span<const uint8_t> blob, std::vector<int32_t>& out, const std::string& what);

// Decoded binary16 value of a float, i.e. what the store keeps of a gate weight.
float round_to_f16(float v);

}  // namespace moe::analysis::packing
