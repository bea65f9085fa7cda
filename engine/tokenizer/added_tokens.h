// Added tokens of a tokenizer.json ("added_tokens"): strings matched whole in the text before
// any pre-tokenization and never split. As in Hugging Face tokenizers (added_vocabulary.rs):
// tokens with normalized=false are matched in the raw text first, the others in the normalized
// remainder; matching is leftmost-longest; single_word, lstrip and rstrip adjust or veto a match.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/normalizer.h"

namespace moe::tok {

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
    bool special = false;
};

// A segment of text: an added token (id >= 0) or plain text to be tokenized (id == -1).
struct Segment {
    size_t begin, end;
    int32_t id;
};

class AddedVocabulary {
public:
    // `normalizer` (may be null) gives the form in which normalized tokens are matched.
    void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

    // Splits `text` on the tokens of one kind: normalized=false ones (`normalized_pass` false,
    // raw text) or normalized=true ones (`normalized_pass` true, normalized text).
    void split(std::string_view text, bool normalized_pass, std::vector<Segment>& out) const;

    const std::vector<AddedToken>& tokens() const { return tokens_; }
    // The content HF decodes for an added token (its normalized form for normalized tokens).
    const std::string& decode_content(size_t index) const { return patterns_[index]; }
    bool empty() const { return tokens_.empty(); }

private:
    // A byte trie of the patterns of one pass; node 0 is the root.
    struct Node {
        std::vector<std::pair<uint8_t, int32_t>> children;
        int32_t token = -1;  // index into tokens_ of the pattern ending here
    };
    struct Trie {
        std::vector<Node> nodes{Node{}};
        bool first_byte[256] = {};
        void insert(std::string_view pattern, int32_t token);
        // Longest pattern starting at text[pos]: (token index, length) or (-1, 0).
        std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const;
    };

    std::vector<AddedToken> tokens_;
    std::vector<std::string> patterns_;
    Trie raw_, normalized_;
};

}  // namespace moe::tok
