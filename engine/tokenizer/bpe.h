// The BPE model of a tokenizer.json: vocab, merges (either "a b" strings or [a, b] pairs) and
// the merge loop of Hugging Face tokenizers (models/bpe/word.rs): repeatedly merge the adjacent
// pair of lowest merge rank, leftmost first on ties. Also unk_token/fuse_unk, byte_fallback and
// ignore_merges. Results of short words are cached (the same word recurs constantly in text).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/json_util.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace moe::tok {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
public:
    static std::unique_ptr<BpeModel> parse(const Json& model, const std::string& path);

    // Appends the ids of one pre-tokenized piece.
    void tokenize(const Piece& piece, std::vector<int32_t>& out) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    const StringIdMap& vocab() const { return vocab_; }
    const std::vector<std::string>& id_to_token() const { return id_to_token_; }  // "" for unused ids

    static constexpr size_t kCacheCapacity = 10000;  // words, as in HF tokenizers
    static constexpr size_t kCacheMaxBytes = 256;    // longer words are not cached

private:
    struct MergeTarget {
        uint32_t rank;
        int32_t id;
    };
    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    void initial_symbols(std::string_view text, std::vector<int32_t>& symbols) const;
    void merge(std::vector<int32_t>& symbols) const;

    StringIdMap vocab_;
    std::vector<std::string> id_to_token_;
    std::unordered_map<uint64_t, MergeTarget> merges_;
    std::optional<int32_t> unk_id_;
    bool fuse_unk_ = false;
    bool byte_fallback_ = false;
    bool ignore_merges_ = false;
    std::array<int32_t, 256> byte_char_id_{};  // id of the byte-level character of each byte, or -1
    std::array<int32_t, 256> byte_fallback_id_{};  // id of "<0xXX>", or -1

    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace moe::tok
