// Added-token matching; see added_tokens.h. The word and space tests of single_word, lstrip and
// rstrip use Unicode classes as Rust's regex crate does (\w: alphabetic, marks, decimal digits,
// connector punctuation, join controls; \s: White_Space).
#include "engine/tokenizer/added_tokens.h"

#include <algorithm>

#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

// Rust regex \w (Unicode): the tests look at one character only.
bool is_word_char(std::string_view ch) {
    static const Regex re(R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", "added token word test");
    thread_local std::vector<Span> m;
    re.find_all(ch, m);
    return !m.empty();
}

// The character that ends at `end` (text[..end] is valid UTF-8 and end > 0).
std::string_view char_before(std::string_view text, size_t end) {
    size_t b = end - 1;
    while (b > 0 && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
    return text.substr(b, end - b);
}

std::string_view char_at(std::string_view text, size_t begin) {
    size_t i = begin;
    next_code_point(text, i);
    return text.substr(begin, i - begin);
}

// Start of the run of White_Space that ends at `end`.
size_t space_run_before(std::string_view text, size_t end) {
    while (end > 0) {
        const std::string_view ch = char_before(text, end);
        size_t i = 0;
        if (!is_white_space(next_code_point(ch, i))) break;
        end -= ch.size();
    }
    return end;
}

// End of the run of White_Space that starts at `begin`.
size_t space_run_after(std::string_view text, size_t begin) {
    while (begin < text.size()) {
        size_t i = begin;
        if (!is_white_space(next_code_point(text, i))) break;
        begin = i;
    }
    return begin;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view pattern, int32_t token) {
    if (pattern.empty()) return;
    int32_t node = 0;
    for (const char ch : pattern) {
        const auto c = static_cast<uint8_t>(ch);
        auto& kids = nodes[static_cast<size_t>(node)].children;
        auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& kv) { return kv.first == c; });
        if (it != kids.end()) {
            node = it->second;
        } else {
            const auto next = static_cast<int32_t>(nodes.size());
            nodes[static_cast<size_t>(node)].children.emplace_back(c, next);
            nodes.emplace_back();
            node = next;
        }
    }
    nodes[static_cast<size_t>(node)].token = token;
    first_byte[static_cast<uint8_t>(pattern[0])] = true;
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
    std::pair<int32_t, size_t> best{-1, 0};
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
        const auto c = static_cast<uint8_t>(text[i]);
        const auto& kids = nodes[static_cast<size_t>(node)].children;
        auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& kv) { return kv.first == c; });
        if (it == kids.end()) break;
        node = it->second;
        if (nodes[static_cast<size_t>(node)].token >= 0) best = {nodes[static_cast<size_t>(node)].token, i + 1 - pos};
    }
    return best;
}

void AddedVocabulary::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
    tokens_ = std::move(tokens);
    patterns_.clear();
    raw_ = Trie{};
    normalized_ = Trie{};
    for (size_t i = 0; i < tokens_.size(); ++i) {
        const AddedToken& t = tokens_[i];
        std::string pattern = t.content;
        if (t.normalized && normalizer) normalizer->normalize(pattern);
        patterns_.push_back(pattern);
        // A later token with the same pattern replaces the earlier one in the trie.
        (t.normalized ? normalized_ : raw_).insert(pattern, static_cast<int32_t>(i));
    }
}

void AddedVocabulary::split(std::string_view text, bool normalized_pass, std::vector<Segment>& out) const {
    out.clear();
    const Trie& trie = normalized_pass ? normalized_ : raw_;
    if (trie.nodes.size() == 1) {
        if (!text.empty()) out.push_back({0, text.size(), -1});
        return;
    }
    size_t start_offset = 0;  // end of the last emitted segment
    size_t pos = 0;           // where the search for the next match starts
    while (pos < text.size()) {
        if (!trie.first_byte[static_cast<uint8_t>(text[pos])]) {
            ++pos;
            continue;
        }
        const auto [index, len] = trie.longest_at(text, pos);
        if (index < 0) {
            ++pos;
            continue;
        }
        const AddedToken& tok = tokens_[static_cast<size_t>(index)];
        size_t start = pos, stop = pos + len;
        pos = stop;  // the matcher moves on past this match whether or not it is kept
        if (tok.single_word) {
            const bool space_before = start == 0 || !is_word_char(char_before(text, start));
            const bool space_after = stop == text.size() || !is_word_char(char_at(text, stop));
            if (!space_before || !space_after) continue;
        }
        if (tok.lstrip) start = std::max(space_run_before(text, start), start_offset);
        if (tok.rstrip) stop = space_run_after(text, stop);
        if (start_offset < start) out.push_back({start_offset, start, -1});
        out.push_back({start, stop, tok.id});
        start_offset = stop;
    }
    if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace moe::tok
