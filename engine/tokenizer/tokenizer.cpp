// moe::Tokenizer: loading entry points, encode and decode; see engine/tokenizer.h. Encode is
// the pipeline of HF tokenizers' encode_single_sequence: raw added tokens -> normalizer ->
// normalized added tokens -> pre-tokenizer -> BPE per piece -> BOS/EOS.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/utf8.h"

namespace moe {

namespace {

std::string read_file(const std::string& path, bool& exists) {
    std::ifstream in(path, std::ios::binary);
    exists = static_cast<bool>(in);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw_failure(path, "read error");
    return ss.str();
}

std::string directory_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

Tokenizer Tokenizer::load_file(const std::string& tokenizer_json_path) {
    std::error_code ec;
    if (std::filesystem::is_directory(tokenizer_json_path, ec))
        throw_input_error(tokenizer_json_path, "is a directory: give the tokenizer.json file (or --model DIR)");
    bool exists = false;
    const std::string json = read_file(tokenizer_json_path, exists);
    if (!exists) throw_input_error(tokenizer_json_path, "cannot open the tokenizer file");
    const std::string config_path = directory_of(tokenizer_json_path) + "/tokenizer_config.json";
    bool has_config = false;
    const std::string config = read_file(config_path, has_config);
    return Tokenizer(tok::load_tokenizer(json, config, tokenizer_json_path, config_path));
}

Tokenizer Tokenizer::load_dir(const std::string& model_dir) {
    return load_file((model_dir.empty() ? std::string(".") : model_dir) + "/tokenizer.json");
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                               const std::string& origin) {
    return Tokenizer(tok::load_tokenizer(tokenizer_json, tokenizer_config_json, origin, origin + " (config)"));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
    const tok::TokenizerImpl& t = *impl_;
    require_utf8(text, "text");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    tok::Arena arena;
    std::vector<tok::Segment> raw_segments, norm_segments;
    auto tokenize_piece = [&](const tok::Piece& p) { t.model->tokenize(p, ids); };

    t.added.split(text, false, raw_segments);
    for (const tok::Segment& seg : raw_segments) {
        if (seg.id >= 0) {
            ids.push_back(seg.id);
            continue;
        }
        std::string_view part = text.substr(seg.begin, seg.end - seg.begin);
        if (t.normalizer) {
            std::string normalized(part);
            t.normalizer->normalize(normalized);
            part = arena.keep(std::move(normalized));
        }
        t.added.split(part, true, norm_segments);
        for (const tok::Segment& s : norm_segments) {
            if (s.id >= 0) ids.push_back(s.id);
            else t.pre_tokenizer.run(tok::Piece{part.substr(s.begin, s.end - s.begin), false}, arena, tokenize_piece);
        }
    }
    if (!add_special) return ids;
    const bool bos = t.config_decides ? t.add_bos : false;
    const bool eos = t.config_decides ? t.add_eos : false;
    const std::vector<int32_t> prefix = t.config_decides ? (bos ? std::vector<int32_t>{*t.bos} : std::vector<int32_t>{}) : t.post.prefix;
    const std::vector<int32_t> suffix = t.config_decides ? (eos ? std::vector<int32_t>{*t.eos} : std::vector<int32_t>{}) : t.post.suffix;
    ids.insert(ids.begin(), prefix.begin(), prefix.end());
    ids.insert(ids.end(), suffix.begin(), suffix.end());
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    const tok::TokenizerImpl& t = *impl_;
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        const int32_t id = ids[i];
        if (!names(id))
            throw_input_error("ids[" + std::to_string(i) + "]", "token id " + std::to_string(id) +
                                                                  " is not in the vocabulary (size " +
                                                                  std::to_string(t.vocab_size()) + ")");
        if (skip_special && t.special[static_cast<size_t>(id)]) continue;
        tokens.push_back(t.decode_string[static_cast<size_t>(id)]);
    }
    if (t.decoder) return t.decoder->decode(std::move(tokens));
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) out += ' ';
        out += tokens[i];
    }
    return out;
}

std::string Tokenizer::token_text(int32_t id) const {
    const tok::TokenizerImpl& t = *impl_;
    if (t.decoder && t.decoder->is_byte_level() && id >= 0 && id < t.vocab_size()) {
        const std::string& s = t.decode_string[static_cast<size_t>(id)];
        if (auto bytes = tok::byte_level_decode(s)) return *bytes;
        if (!s.empty()) return s;
    }
    const int32_t one[1] = {id};
    return decode(one);
}

bool Tokenizer::names(int32_t id) const {
    return id >= 0 && id < impl_->vocab_size() && !impl_->decode_string[static_cast<size_t>(id)].empty();
}

std::string Tokenizer::token_content(int32_t id) const {
    if (id < 0 || id >= impl_->vocab_size()) return {};
    return impl_->decode_string[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view content) const {
    if (auto it = impl_->added_ids.find(content); it != impl_->added_ids.end()) return it->second;
    return impl_->model->token_to_id(content);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size(); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

bool Tokenizer::adds_bos() const {
    const tok::TokenizerImpl& t = *impl_;
    if (t.config_decides) return t.add_bos;
    return t.bos && !t.post.prefix.empty() && t.post.prefix.front() == *t.bos;
}

bool Tokenizer::adds_eos() const {
    const tok::TokenizerImpl& t = *impl_;
    if (t.config_decides) return t.add_eos;
    return t.eos && !t.post.suffix.empty() && t.post.suffix.back() == *t.eos;
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && id < impl_->vocab_size() && impl_->special[static_cast<size_t>(id)];
}

const std::string& Tokenizer::source() const { return impl_->source; }

std::string utf8_replace_invalid(std::string_view bytes) { return tok::utf8_lossy(bytes); }
std::string utf8_escape_invalid(std::string_view bytes) { return tok::utf8_escape_invalid(bytes); }

void require_tokenizer_fits(const Tokenizer& tokenizer, int64_t vocab_size) {
    if (tokenizer.vocab_size() > vocab_size)
        throw_input_error(tokenizer.source(), "tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                                  " tokens, more than the model's vocab_size " + std::to_string(vocab_size));
}

void require_utf8(std::string_view text, const std::string& where) {
    const size_t bad = tok::find_invalid_utf8(text);
    if (bad == std::string_view::npos) return;
    static const char* hex = "0123456789abcdef";
    const auto b = static_cast<uint8_t>(text[bad]);
    throw_input_error(where, "invalid UTF-8 at byte offset " + std::to_string(bad) + " (byte 0x" + hex[b >> 4] +
                                 hex[b & 15] + ")");
}

}  // namespace moe
