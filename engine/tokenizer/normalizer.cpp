// The supported normalizers; see normalizer.h. Semantics follow Hugging Face tokenizers
// (normalizers/{replace,prepend,strip}.rs): Prepend adds its string to non-empty text only;
// Strip removes Unicode White_Space at either end.
#include "engine/tokenizer/normalizer.h"

#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
    void normalize(std::string& text) const override {
        for (const auto& p : parts_) p->normalize(text);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> parts_;
};

class ReplaceNormalizer final : public Normalizer {
public:
    ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void normalize(std::string& text) const override { text = replace_all(pattern_, content_, text); }

private:
    Regex pattern_;
    std::string content_;
};

class PrependNormalizer final : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    void normalize(std::string& text) const override {
        if (!text.empty()) text.insert(0, prefix_);
    }

private:
    std::string prefix_;
};

class StripNormalizer final : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    void normalize(std::string& text) const override {
        size_t begin = 0, end = text.size();
        if (left_) {
            size_t i = 0;
            while (i < end) {
                size_t j = i;
                if (!is_white_space(next_code_point(text, j))) break;
                i = j;
            }
            begin = i;
        }
        if (right_) {
            // Walk forward remembering where the trailing run of white space starts.
            size_t i = begin, run = end;
            bool in_run = false;
            while (i < end) {
                const size_t at = i;
                const bool ws = is_white_space(next_code_point(text, i));
                if (ws && !in_run) run = at;
                in_run = ws;
            }
            if (in_run) end = run;
        }
        text = text.substr(begin, end - begin);
    }

private:
    bool left_, right_;
};

}  // namespace

Regex parse_pattern(const Json& j, const std::string& path) {
    if (const Json* s = json_optional(j, "String")) return Regex::literal(json_string(*s, path + ".String"), path + ".String");
    if (const Json* r = json_optional(j, "Regex")) return Regex(json_string(*r, path + ".Regex"), path + ".Regex");
    json_error(path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

std::string replace_all(const Regex& pattern, const std::string& content, std::string_view text) {
    thread_local std::vector<Span> matches;
    pattern.find_all(text, matches);
    if (matches.empty()) return std::string(text);
    std::string out;
    size_t prev = 0;
    for (const Span& m : matches) {
        out.append(text.substr(prev, m.begin - prev));
        out += content;
        prev = m.end;
    }
    out.append(text.substr(prev));
    return out;
}

std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& path) {
    if (j.is_null()) return nullptr;
    const std::string type = json_type(j, path);
    if (type == "Sequence") {
        const Json& list = json_field(j, "normalizers", path);
        if (!list.is_array()) json_error(path + ".normalizers", "expected an array, found " + json_kind(list));
        std::vector<std::unique_ptr<Normalizer>> parts;
        for (size_t i = 0; i < list.size(); ++i)
            if (auto n = parse_normalizer(list[i], path + ".normalizers[" + std::to_string(i) + "]")) parts.push_back(std::move(n));
        if (parts.empty()) return nullptr;
        if (parts.size() == 1) return std::move(parts[0]);
        return std::make_unique<SequenceNormalizer>(std::move(parts));
    }
    if (type == "Replace")
        return std::make_unique<ReplaceNormalizer>(parse_pattern(json_field(j, "pattern", path), path + ".pattern"),
                                                   json_string(json_field(j, "content", path), path + ".content"));
    if (type == "Prepend")
        return std::make_unique<PrependNormalizer>(json_string(json_field(j, "prepend", path), path + ".prepend"));
    if (type == "Strip")
        return std::make_unique<StripNormalizer>(json_bool_or(j, "strip_left", false, path),
                                                 json_bool_or(j, "strip_right", false, path));
    json_error(path + ".type", "normalizer '" + type + "' is not supported (supported: Sequence, Replace, Prepend, Strip)");
}

}  // namespace moe::tok
