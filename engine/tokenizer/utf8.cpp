// UTF-8 validation, iteration and lossy decoding; see utf8.h. The well-formed byte ranges are
// those of the Unicode Standard, Table 3-7 (no overlongs, no surrogates, nothing above U+10FFFF).
#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

// Length of the longest prefix of s[i..] that is a valid beginning of a sequence (1..3 when
// truncated or broken after that many bytes, or the full length when complete), and whether
// the sequence is complete. Returns 0 when s[i] itself cannot start a sequence.
struct Scan {
    int valid_bytes;  // bytes that form a well-formed (possibly incomplete) prefix
    int needed;       // bytes of the whole sequence
};

Scan scan(std::string_view s, size_t i) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) return {1, 1};
    int need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return {0, 1};
    }
    int have = 1;
    for (int k = 1; k < need; ++k) {
        if (i + k >= s.size()) break;
        const auto b = static_cast<uint8_t>(s[i + k]);
        const uint8_t l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
        if (b < l || b > h) break;
        ++have;
    }
    return {have, need};
}

}  // namespace

int utf8_sequence_length(std::string_view s, size_t i) {
    const Scan sc = scan(s, i);
    return sc.valid_bytes == sc.needed && sc.valid_bytes > 0 ? sc.needed : 0;
}

size_t find_invalid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        if (static_cast<uint8_t>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const int n = utf8_sequence_length(s, i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

char32_t next_code_point(std::string_view s, size_t& i) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    int n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
    char32_t cp = b0 & (0x7F >> n);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    i += n;
    return cp;
}

namespace {

// `bytes` copied with each maximal ill-formed subpart (at least one byte) rewritten by
// bad(out, subpart).
template <typename Bad>
std::string rewrite_invalid(std::string_view bytes, Bad&& bad) {
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        const Scan sc = scan(bytes, i);
        const size_t n = sc.valid_bytes == sc.needed ? sc.needed : sc.valid_bytes > 0 ? sc.valid_bytes : 1;
        if (sc.valid_bytes == sc.needed)
            out.append(bytes.substr(i, n));
        else
            bad(out, bytes.substr(i, n));
        i += n;
    }
    return out;
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
    return rewrite_invalid(bytes, [](std::string& out, std::string_view) { out.append(kReplacementChar); });
}

std::string byte_token(uint8_t byte) {
    static const char* const kHex = "0123456789ABCDEF";
    return std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
}

std::string utf8_escape_invalid(std::string_view bytes) {
    return rewrite_invalid(bytes, [](std::string& out, std::string_view part) {
        for (const char c : part) out += byte_token(static_cast<uint8_t>(c));
    });
}

size_t utf8_stable_prefix(std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        const Scan sc = scan(bytes, i);
        if (sc.valid_bytes == sc.needed) {
            i += sc.needed;
        } else if (sc.valid_bytes > 0 && i + sc.valid_bytes == bytes.size()) {
            return i;  // a well-formed but incomplete tail: wait for more bytes
        } else {
            i += sc.valid_bytes > 0 ? sc.valid_bytes : 1;
        }
    }
    return i;
}

}  // namespace moe::tok
