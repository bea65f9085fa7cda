// GPT-2's byte-to-character table (bytes_to_unicode): every byte maps to one printable code
// point, so that byte-level BPE vocabularies are plain strings. The ByteLevel pre-tokenizer maps
// bytes to characters, the ByteLevel decoder maps them back.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moe::tok {

struct ByteLevelTable {
    std::array<std::string, 256> byte_to_utf8;  // byte -> UTF-8 of its character
    std::array<int16_t, 0x144> char_to_byte;    // code point (< 0x144) -> byte, or -1
};

const ByteLevelTable& byte_level_table();

// The byte-level form of raw bytes (each byte -> its character).
std::string byte_level_encode(std::string_view raw);

// Maps the characters of a token back to bytes; nullopt if some character is not one of the
// 256 byte characters (HF then uses the token's own UTF-8 bytes).
std::optional<std::string> byte_level_decode(std::string_view token);

}  // namespace moe::tok
