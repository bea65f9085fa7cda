// Pre-tokenizers of a tokenizer.json: split a piece of text into the pieces BPE sees. The
// Sequence is flattened into steps; each step splits every piece of the previous one. Supported:
// Split (String/Regex pattern, all five behaviours, invert), Digits, ByteLevel (add_prefix_space,
// use_regex with GPT-2's own pattern). Other types are refused at load.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/json_util.h"
#include "engine/tokenizer/regex.h"

namespace moe::tok {

// A piece of text during one encode. `byte_level_pending` marks text that a ByteLevel step has
// claimed but not yet mapped to byte characters: BPE maps it lazily (and caches by raw text);
// a later step that must see the mapped text materialises it first.
struct Piece {
    std::string_view text;
    bool byte_level_pending = false;
};

// Owns the strings created during one encode; pieces point into it. A deque keeps them in place.
class Arena {
public:
    std::string_view keep(std::string s) { return strings_.emplace_back(std::move(s)); }

private:
    std::deque<std::string> strings_;
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

class PreTokenizerStep {
public:
    virtual ~PreTokenizerStep() = default;
    virtual void split(const Piece& piece, Arena& arena, std::vector<Piece>& out) const = 0;
};

class PreTokenizer {
public:
    // An empty pre-tokenizer (JSON null) passes each piece through unchanged.
    static PreTokenizer parse(const Json& j, const std::string& path);

    // Calls sink(piece) for every final piece of `piece`, in order.
    template <class Sink>
    void run(const Piece& piece, Arena& arena, Sink&& sink) const {
        run_from(0, piece, arena, sink);
    }

    size_t step_count() const { return steps_.size(); }

private:
    template <class Sink>
    void run_from(size_t step, const Piece& piece, Arena& arena, Sink& sink) const {
        if (step == steps_.size()) {
            sink(piece);
            return;
        }
        // One reusable buffer per depth (steps run depth-first, so depth d's buffer is not
        // touched while its pieces are being visited); saves an allocation per piece and step.
        thread_local std::vector<std::vector<Piece>> levels;
        if (levels.size() <= step) levels.resize(step + 1);
        std::vector<Piece> parts;
        parts.swap(levels[step]);
        parts.clear();
        steps_[step]->split(piece, arena, parts);
        for (const Piece& p : parts) run_from(step + 1, p, arena, sink);
        parts.swap(levels[step]);
    }

    std::vector<std::shared_ptr<const PreTokenizerStep>> steps_;
};

// Spans of `len` bytes kept after applying `behavior` to the matches (HF normalizer.rs split);
// empty spans are dropped.
void split_by_behavior(const std::vector<Span>& matches, size_t len, SplitBehavior behavior, bool invert,
                       std::vector<Span>& out);

}  // namespace moe::tok
