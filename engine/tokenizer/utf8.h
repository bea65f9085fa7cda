// UTF-8 helpers of the tokenizer: validation with the offending byte offset, code point
// iteration, Rust-compatible lossy decoding (one U+FFFD per maximal ill-formed subpart, as
// String::from_utf8_lossy does, so decode() matches Hugging Face tokenizers byte for byte) and
// the length of the complete prefix of a byte stream (for the streaming decoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::tok {

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view s);

// Length of the well-formed sequence that starts at s[i] (1..4), or 0 if it is ill-formed
// or truncated.
int utf8_sequence_length(std::string_view s, size_t i);

// Appends the UTF-8 encoding of code point cp (cp must be a scalar value).
void append_utf8(std::string& out, char32_t cp);

// Decodes the code point at s[i] of a valid UTF-8 string and advances i.
char32_t next_code_point(std::string_view s, size_t& i);

// Replaces each maximal ill-formed subpart by U+FFFD (WHATWG / Rust from_utf8_lossy rule).
std::string utf8_lossy(std::string_view bytes);

// A byte's name as a byte-fallback token has it, "<0xXX>" (upper-case hex).
std::string byte_token(uint8_t byte);

// Each byte of an ill-formed subsequence written as its byte_token, the rest kept.
std::string utf8_escape_invalid(std::string_view bytes);

// Length of the longest prefix of `bytes` whose lossy decoding cannot change when more bytes
// are appended: everything but a trailing, so far well-formed, incomplete sequence.
size_t utf8_stable_prefix(std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \\s accept).
inline bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

}  // namespace moe::tok
