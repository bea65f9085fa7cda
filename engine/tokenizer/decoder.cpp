// The supported decoders; see decoder.h. Each follows the decode_chain of Hugging Face
// tokenizers (decoders/*.rs, pre_tokenizers/{byte_level,metaspace}.rs, normalizers/replace.rs),
// including its handling of invalid UTF-8 (ByteLevel: lossy; ByteFallback: one U+FFFD per byte).
#include "engine/tokenizer/decoder.h"

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

class ByteLevelDecoder final : public DecoderStep {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const std::string& t : tokens) {
            if (auto b = byte_level_decode(t)) bytes += *b;
            else bytes += t;  // not made of byte characters (e.g. a special token): its own bytes
        }
        tokens.assign(1, utf8_lossy(bytes));
    }
};

class ReplaceDecoder final : public DecoderStep {
public:
    ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) t = replace_all(pattern_, content_, t);
    }

private:
    Regex pattern_;
    std::string content_;
};

class ByteFallbackDecoder final : public DecoderStep {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        std::string pending;
        auto flush = [&] {
            if (pending.empty()) return;
            if (find_invalid_utf8(pending) == std::string::npos) out.push_back(pending);
            else
                for (size_t i = 0; i < pending.size(); ++i) out.emplace_back(kReplacementChar);
            pending.clear();
        };
        for (std::string& t : tokens) {
            int byte = -1;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') byte = hex_byte(t[3], t[4]);
            if (byte >= 0) {
                pending.push_back(static_cast<char>(byte));
            } else {
                flush();
                out.push_back(std::move(t));
            }
        }
        flush();
        tokens = std::move(out);
    }

private:
    static int hex_digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    static int hex_byte(char hi, char lo) {
        const int h = hex_digit(hi), l = hex_digit(lo);
        return h < 0 || l < 0 ? -1 : h * 16 + l;
    }
};

class FuseDecoder final : public DecoderStep {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

// Strip: removes up to `start` leading and `stop` trailing copies of one character per token.
class StripDecoder final : public DecoderStep {
public:
    StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) {
            std::vector<std::string_view> chars;
            for (size_t i = 0; i < t.size();) {
                const size_t b = i;
                next_code_point(t, i);
                chars.push_back(std::string_view(t).substr(b, i - b));
            }
            size_t begin = 0, end = chars.size();
            for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) begin = i + 1;
            for (size_t i = 0; i < stop_ && i < chars.size() && chars[chars.size() - 1 - i] == content_; ++i)
                end = chars.size() - 1 - i;
            std::string out;
            for (size_t i = begin; i < end; ++i) out += chars[i];
            t = std::move(out);
        }
    }

private:
    std::string content_;
    size_t start_, stop_;
};

class MetaspaceDecoder final : public DecoderStep {
public:
    MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (size_t k = 0; k < tokens.size(); ++k) {
            const std::string& t = tokens[k];
            std::string out;
            for (size_t i = 0; i < t.size();) {
                const size_t b = i;
                next_code_point(t, i);
                const std::string_view ch = std::string_view(t).substr(b, i - b);
                if (ch == replacement_) {
                    if (!(k == 0 && strip_first_)) out += ' ';
                } else {
                    out += ch;
                }
            }
            tokens[k] = std::move(out);
        }
    }

private:
    std::string replacement_;
    bool strip_first_;
};

std::string one_char(const Json& j, const std::string& path) {
    const std::string s = json_string(j, path);
    size_t i = 0;
    if (s.empty() || find_invalid_utf8(s) != std::string::npos || (next_code_point(s, i), i != s.size()))
        json_error(path, "expected a single character, found '" + s + "'");
    return s;
}

void parse_into(const Json& j, const std::string& path, std::vector<std::unique_ptr<DecoderStep>>& steps) {
    const std::string type = json_type(j, path);
    if (type == "Sequence") {
        const Json& list = json_field(j, "decoders", path);
        if (!list.is_array()) json_error(path + ".decoders", "expected an array, found " + json_kind(list));
        for (size_t i = 0; i < list.size(); ++i) parse_into(list[i], path + ".decoders[" + std::to_string(i) + "]", steps);
    } else if (type == "ByteLevel") {
        steps.push_back(std::make_unique<ByteLevelDecoder>());
    } else if (type == "Replace") {
        steps.push_back(std::make_unique<ReplaceDecoder>(parse_pattern(json_field(j, "pattern", path), path + ".pattern"),
                                                         json_string(json_field(j, "content", path), path + ".content")));
    } else if (type == "ByteFallback") {
        steps.push_back(std::make_unique<ByteFallbackDecoder>());
    } else if (type == "Fuse") {
        steps.push_back(std::make_unique<FuseDecoder>());
    } else if (type == "Strip") {
        steps.push_back(std::make_unique<StripDecoder>(one_char(json_field(j, "content", path), path + ".content"),
                                                       static_cast<size_t>(json_int(json_field(j, "start", path), path + ".start", 0, 1 << 20)),
                                                       static_cast<size_t>(json_int(json_field(j, "stop", path), path + ".stop", 0, 1 << 20))));
    } else if (type == "Metaspace") {
        // prepend_scheme "never" keeps the first token's leading space; older files say
        // add_prefix_space instead.
        bool strip_first = json_bool_or(j, "add_prefix_space", true, path);
        if (const Json* scheme = json_optional(j, "prepend_scheme"))
            strip_first = json_string(*scheme, path + ".prepend_scheme") != "never";
        steps.push_back(std::make_unique<MetaspaceDecoder>(one_char(json_field(j, "replacement", path), path + ".replacement"),
                                                           strip_first));
    } else {
        json_error(path + ".type", "decoder '" + type +
                                       "' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, "
                                       "Metaspace, Sequence)");
    }
}

}  // namespace

std::unique_ptr<Decoder> Decoder::parse(const Json& j, const std::string& path) {
    if (j.is_null()) return nullptr;
    auto d = std::make_unique<Decoder>();
    parse_into(j, path, d->steps_);
    d->byte_level_only_ = d->steps_.size() == 1 && dynamic_cast<const ByteLevelDecoder*>(d->steps_[0].get());
    return d;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
    for (const auto& step : steps_) step->decode_chain(tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
}

}  // namespace moe::tok
