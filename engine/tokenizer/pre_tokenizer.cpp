// The supported pre-tokenizers; see pre_tokenizer.h. Split semantics follow Hugging Face
// tokenizers (tokenizer/normalizer.rs `split`, pre_tokenizers/{split,digits,byte_level}.rs):
// the regex partitions a piece into matches and gaps, the behaviour decides what is kept and
// what is glued together, and empty pieces are dropped.
#include "engine/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/normalizer.h"

namespace moe::tok {

namespace {

struct Seg {
    size_t begin, end;
    bool match;
};

std::string_view materialize(const Piece& p, Arena& arena) {
    return p.byte_level_pending ? arena.keep(byte_level_encode(p.text)) : p.text;
}

void emit(std::string_view text, const std::vector<Span>& spans, bool pending, std::vector<Piece>& out) {
    for (const Span& s : spans) out.push_back({text.substr(s.begin, s.end - s.begin), pending});
}

class SplitStep final : public PreTokenizerStep {
public:
    SplitStep(Regex pattern, SplitBehavior behavior, bool invert)
        : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
    void split(const Piece& piece, Arena& arena, std::vector<Piece>& out) const override {
        const std::string_view text = materialize(piece, arena);
        thread_local std::vector<Span> matches, spans;
        pattern_.find_all(text, matches);
        split_by_behavior(matches, text.size(), behavior_, invert_, spans);
        emit(text, spans, false, out);
    }

private:
    Regex pattern_;
    SplitBehavior behavior_;
    bool invert_;
};

// Digits: every numeric character (Unicode category N, as Rust's char::is_numeric) is a match.
class DigitsStep final : public PreTokenizerStep {
public:
    explicit DigitsStep(bool individual) : individual_(individual), numeric_("\\p{N}", "Digits") {}
    void split(const Piece& piece, Arena& arena, std::vector<Piece>& out) const override {
        const std::string_view text = materialize(piece, arena);
        thread_local std::vector<Span> matches, spans;
        numeric_.find_all(text, matches);
        split_by_behavior(matches, text.size(), individual_ ? SplitBehavior::isolated : SplitBehavior::contiguous,
                          false, spans);
        emit(text, spans, false, out);
    }

private:
    bool individual_;
    Regex numeric_;
};

const Regex& gpt2_regex() {
    static const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                          "ByteLevel");
    return re;
}

class ByteLevelStep final : public PreTokenizerStep {
public:
    ByteLevelStep(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
    void split(const Piece& piece, Arena& arena, std::vector<Piece>& out) const override {
        std::string_view text = materialize(piece, arena);
        if (add_prefix_space_ && (text.empty() || text.front() != ' ')) {
            std::string spaced;
            spaced.reserve(text.size() + 1);
            spaced.push_back(' ');
            spaced.append(text);
            text = arena.keep(std::move(spaced));
        }
        if (!use_regex_) {
            out.push_back({text, true});
            return;
        }
        thread_local std::vector<Span> matches, spans;
        gpt2_regex().find_all(text, matches);
        split_by_behavior(matches, text.size(), SplitBehavior::isolated, false, spans);
        emit(text, spans, true, out);
    }

private:
    bool add_prefix_space_, use_regex_;
};

SplitBehavior parse_behavior(const Json& j, const std::string& path) {
    const std::string b = json_string(j, path);
    if (b == "Removed") return SplitBehavior::removed;
    if (b == "Isolated") return SplitBehavior::isolated;
    if (b == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
    if (b == "MergedWithNext") return SplitBehavior::merged_with_next;
    if (b == "Contiguous") return SplitBehavior::contiguous;
    json_error(path, "unknown split behavior '" + b +
                         "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

void parse_into(const Json& j, const std::string& path, std::vector<std::shared_ptr<const PreTokenizerStep>>& steps) {
    if (j.is_null()) return;
    const std::string type = json_type(j, path);
    if (type == "Sequence") {
        const Json& list = json_field(j, "pretokenizers", path);
        if (!list.is_array()) json_error(path + ".pretokenizers", "expected an array, found " + json_kind(list));
        for (size_t i = 0; i < list.size(); ++i)
            parse_into(list[i], path + ".pretokenizers[" + std::to_string(i) + "]", steps);
    } else if (type == "Split") {
        steps.push_back(std::make_shared<SplitStep>(parse_pattern(json_field(j, "pattern", path), path + ".pattern"),
                                                    parse_behavior(json_field(j, "behavior", path), path + ".behavior"),
                                                    json_bool_or(j, "invert", false, path)));
    } else if (type == "Digits") {
        steps.push_back(std::make_shared<DigitsStep>(json_bool_or(j, "individual_digits", false, path)));
    } else if (type == "ByteLevel") {
        steps.push_back(std::make_shared<ByteLevelStep>(json_bool_or(j, "add_prefix_space", true, path),
                                                        json_bool_or(j, "use_regex", true, path)));
    } else {
        json_error(path + ".type", "pre-tokenizer '" + type + "' is not supported (supported: Sequence, Split, Digits, ByteLevel)");
    }
}

}  // namespace

void split_by_behavior(const std::vector<Span>& matches, size_t len, SplitBehavior behavior, bool invert,
                       std::vector<Span>& out) {
    out.clear();
    if (!invert && (behavior == SplitBehavior::isolated || behavior == SplitBehavior::removed)) {
        // The common cases, without the intermediate lists.
        size_t prev = 0;
        for (const Span& m : matches) {
            if (prev < m.begin) out.push_back({prev, m.begin});
            if (behavior == SplitBehavior::isolated && m.begin < m.end) out.push_back(m);
            prev = m.end;
        }
        if (prev < len) out.push_back({prev, len});
        return;
    }
    thread_local std::vector<Seg> segs, kept;
    segs.clear();
    kept.clear();
    size_t prev = 0;
    for (const Span& m : matches) {
        if (prev != m.begin) segs.push_back({prev, m.begin, false});
        segs.push_back({m.begin, m.end, true});
        prev = m.end;
    }
    if (prev != len) segs.push_back({prev, len, false});
    if (invert)
        for (Seg& s : segs) s.match = !s.match;

    bool previous_match = false;
    switch (behavior) {
        case SplitBehavior::isolated:
            kept.assign(segs.begin(), segs.end());
            break;
        case SplitBehavior::removed:
            for (const Seg& s : segs)
                if (!s.match) kept.push_back(s);
            break;
        case SplitBehavior::contiguous:
            for (const Seg& s : segs) {
                if (s.match == previous_match && !kept.empty()) kept.back().end = s.end;
                else kept.push_back(s);
                previous_match = s.match;
            }
            break;
        case SplitBehavior::merged_with_previous:
            for (const Seg& s : segs) {
                if (s.match && !previous_match && !kept.empty()) kept.back().end = s.end;
                else kept.push_back(s);
                previous_match = s.match;
            }
            break;
        case SplitBehavior::merged_with_next:
            for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
                if (it->match && !previous_match && !kept.empty()) kept.back().begin = it->begin;
                else kept.push_back(*it);
                previous_match = it->match;
            }
            std::reverse(kept.begin(), kept.end());
            break;
    }
    for (const Seg& s : kept)
        if (s.end > s.begin) out.push_back({s.begin, s.end});
}

PreTokenizer PreTokenizer::parse(const Json& j, const std::string& path) {
    PreTokenizer p;
    parse_into(j, path, p.steps_);
    return p;
}

}  // namespace moe::tok
