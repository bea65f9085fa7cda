// StreamDecoder; see engine/tokenizer.h. Byte-level decoders: token bytes are appended and the
// longest prefix whose lossy UTF-8 decoding can no longer change is emitted. Other decoders
// (whose output for a token depends on its neighbours, e.g. Strip or Metaspace on the first
// token) use the method of HF tokenizers' DecodeStream: decode a short window of ids and emit
// what extends the previous window's text, unless it ends in U+FFFD.
#include "engine/tokenizer.h"
#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/utf8.h"

namespace moe {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

void StreamDecoder::reset() {
    pending_bytes_.clear();
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
}

std::string StreamDecoder::push(int32_t id) {
    const tok::TokenizerImpl& t = *tokenizer_.impl_;
    if (!t.decoder || !t.decoder->is_byte_level()) {
        // HF DecodeStream::step. Without a decoder tokens are joined by spaces; the same
        // window rule applies.
        if (prefix_.empty() && !ids_.empty()) {
            std::string p = tokenizer_.decode(ids_, skip_special_);
            if (!p.ends_with(tok::kReplacementChar)) {
                prefix_ = std::move(p);
                prefix_index_ = ids_.size();
            }
        }
        ids_.push_back(id);
        const std::string text = tokenizer_.decode(ids_, skip_special_);
        if (text.size() <= prefix_.size() || text.ends_with(tok::kReplacementChar)) return {};
        std::string fresh;
        if (text.starts_with(prefix_)) fresh = text.substr(prefix_.size());
        // (A window whose text no longer extends the prefix cannot happen with the supported
        // decoders; should it, nothing is emitted and the window restarts.)
        const size_t new_prefix_index = ids_.size() - prefix_index_;
        ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_index_));
        prefix_ = tokenizer_.decode(ids_, skip_special_);
        prefix_index_ = new_prefix_index;
        return fresh;
    }
    if (skip_special_ && tokenizer_.is_special(id)) return {};
    pending_bytes_ += tokenizer_.token_text(id);
    const size_t stable = tok::utf8_stable_prefix(pending_bytes_);
    std::string out = tok::utf8_lossy(std::string_view(pending_bytes_).substr(0, stable));
    pending_bytes_.erase(0, stable);
    return out;
}

std::string StreamDecoder::finish() {
    std::string out;
    const tok::TokenizerImpl& t = *tokenizer_.impl_;
    if (t.decoder && t.decoder->is_byte_level()) {
        out = tok::utf8_lossy(pending_bytes_);
    } else if (!ids_.empty()) {
        const std::string text = tokenizer_.decode(ids_, skip_special_);
        if (text.starts_with(prefix_)) out = text.substr(prefix_.size());
    }
    reset();
    return out;
}

}  // namespace moe
