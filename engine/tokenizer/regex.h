// A compiled regular expression of a tokenizer.json (Split patterns, Replace patterns, the GPT-2
// ByteLevel pattern), run with PCRE2 in UTF mode, JIT-compiled once at load. Patterns are written
// for Oniguruma (what Hugging Face tokenizers uses); the few constructs whose meaning differs are
// translated first (see translate_oniguruma in regex.cpp). Not a general regex API.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe::tok {

struct Span {
    size_t begin;
    size_t end;
};

class Regex {
public:
    // Throws moe::Error(input) naming `where` when the pattern does not compile.
    Regex(const std::string& pattern, const std::string& where);
    // A literal string pattern (tokenizer.json {"String": ...}).
    static Regex literal(const std::string& text, const std::string& where);

    // All matches in `subject`, left to right, with Oniguruma's find_iter rule for empty
    // matches (an empty match right after the previous match is skipped). The subject must be
    // valid UTF-8; anchors and lookarounds see only the subject.
    void find_all(std::string_view subject, std::vector<Span>& out) const;

    const std::string& pattern() const { return source_; }

private:
    Regex() = default;
    struct Code;
    std::shared_ptr<const Code> code_;
    std::string source_;
};

// The pattern rewritten for PCRE2 so that it means what Oniguruma means (exposed for tests).
std::string translate_oniguruma(const std::string& pattern, const std::string& where);

}  // namespace moe::tok
