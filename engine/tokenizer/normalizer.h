// Normalizers of a tokenizer.json: text -> text before pre-tokenization, applied to each piece
// of the input that is not an added token matched in the raw text. Supported: Sequence, Replace
// (String or Regex pattern), Prepend, Strip. Unicode normalization forms, Lowercase,
// StripAccents, BertNormalizer and Precompiled are refused at load with a clear error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/json_util.h"
#include "engine/tokenizer/regex.h"

namespace moe::tok {

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string& text) const = 0;
};

// nullptr for `null` and for an empty Sequence (nothing to do).
std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& path);

// A {"String": s} or {"Regex": r} pattern object.
Regex parse_pattern(const Json& j, const std::string& path);

// Replaces every match of `pattern` in `text` by `content` (HF Replace semantics).
std::string replace_all(const Regex& pattern, const std::string& content, std::string_view text);

}  // namespace moe::tok
