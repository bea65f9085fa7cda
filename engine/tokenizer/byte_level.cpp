// bytes_to_unicode of GPT-2 (openai/gpt-2 encoder.py), as used by Hugging Face tokenizers'
// ByteLevel pre-tokenizer and decoder: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
#include "engine/tokenizer/byte_level.h"

#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

ByteLevelTable make_table() {
    ByteLevelTable t;
    t.char_to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
        append_utf8(t.byte_to_utf8[b], cp);
        t.char_to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
}

}  // namespace

const ByteLevelTable& byte_level_table() {
    static const ByteLevelTable table = make_table();
    return table;
}

std::string byte_level_encode(std::string_view raw) {
    const ByteLevelTable& t = byte_level_table();
    std::string out;
    out.reserve(raw.size() * 2);
    for (const char c : raw) out += t.byte_to_utf8[static_cast<uint8_t>(c)];
    return out;
}

std::optional<std::string> byte_level_decode(std::string_view token) {
    const ByteLevelTable& t = byte_level_table();
    std::string out;
    out.reserve(token.size());
    size_t i = 0;
    while (i < token.size()) {
        if (utf8_sequence_length(token, i) == 0) return std::nullopt;
        const char32_t cp = next_code_point(token, i);
        if (cp >= t.char_to_byte.size() || t.char_to_byte[cp] < 0) return std::nullopt;
        out.push_back(static_cast<char>(t.char_to_byte[cp]));
    }
    return out;
}

}  // namespace moe::tok
