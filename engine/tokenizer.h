// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (+ tokenizer_config.json),
// producing the same ids as the Hugging Face tokenizers library on DeepSeek's tokenizers
// (DeepSeek LLM / DeepSeekMoE 100k, DeepSeek-V3/R1 128k). Not a trainer, and BPE only: other
// model types and unsupported components are refused at load with a moe::Error naming them.
// Thread safety: a Tokenizer is immutable after loading; all const methods may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
public:
    // Loads tokenizer.json; tokenizer_config.json beside it (if present) gives
    // add_bos_token/add_eos_token and bos/eos. Throws moe::Error(input) naming the file and
    // what is wrong (bad JSON with its byte offset, unsupported type, merge naming an unknown
    // token, duplicate id, invalid regex, ...).
    static Tokenizer load_file(const std::string& tokenizer_json_path);
    static Tokenizer load_dir(const std::string& model_dir);  // DIR/tokenizer.json (+ tokenizer_config.json)
    // From JSON text in memory (config may be empty); `origin` names the source in errors.
    static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json = {},
                               const std::string& origin = "tokenizer.json");

    // Text -> ids. `add_special` adds BOS/EOS as tokenizer_config.json says (when it has
    // add_bos_token/add_eos_token, as transformers' LlamaTokenizerFast does) or else as the
    // tokenizer.json post-processor says. Throws moe::Error(input) on invalid UTF-8, naming the
    // byte offset; callers that prefer replacement apply utf8_replace_invalid() first.
    std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;

    // Ids -> text, as HF tokenizers' decode (invalid UTF-8 from byte tokens becomes U+FFFD).
    // Throws moe::Error(input) for an id outside [0, vocab_size()) or one that names no token.
    std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

    // Decoded bytes of one token; for byte-level tokenizers this may be part of a UTF-8
    // sequence (e.g. one of the three bytes of a CJK character).
    std::string token_text(int32_t id) const;
    // The token's string as stored in the vocab (e.g. "Ġthe"); empty for an unused id.
    std::string token_content(int32_t id) const;
    bool names(int32_t id) const;  // whether `id` is a token (decode() refuses the others)
    std::optional<int32_t> token_id(std::string_view token_content) const;  // e.g. "<｜end▁of▁sentence｜>"

    int32_t vocab_size() const;  // 1 + the highest id of the vocab and the added tokens
    std::optional<int32_t> bos_id() const;
    std::optional<int32_t> eos_id() const;
    bool adds_bos() const;  // whether encode(text, true) starts with bos_id()
    bool adds_eos() const;
    bool is_special(int32_t id) const;  // an added token marked special (skipped by skip_special)
    const std::string& source() const;  // the file (or origin) it was loaded from

private:
    explicit Tokenizer(std::shared_ptr<const tok::TokenizerImpl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const tok::TokenizerImpl> impl_;
    friend class StreamDecoder;
};

// Incremental decoding for generation: push(id) returns the text that is complete now and
// holds back an incomplete UTF-8 sequence until the bytes that complete it arrive; the
// concatenation of all push() results and finish() equals tokenizer.decode(all ids).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
    std::string push(int32_t id);
    std::string finish();  // flushes what is held back (an incomplete tail becomes U+FFFD)
    void reset();

private:
    Tokenizer tokenizer_;
    bool skip_special_;
    std::string pending_bytes_;       // byte-level decoders: bytes not yet emitted
    std::vector<int32_t> ids_;        // other decoders: ids since the last emitted prefix
    std::string prefix_;              // other decoders: decode(ids_[..prefix_index_])
    size_t prefix_index_ = 0;
};

// Throws moe::Error(input) naming the tokenizer's file when it has more ids than a model of
// `vocab_size` (a tokenizer of another model): its texts would give ids the model has no row for.
void require_tokenizer_fits(const Tokenizer& tokenizer, int64_t vocab_size);

// Replaces each ill-formed UTF-8 subsequence by U+FFFD (the caller's replacement policy).
std::string utf8_replace_invalid(std::string_view bytes);

// Each byte of an ill-formed UTF-8 subsequence written as "<0xXX>", the rest kept: how a token
// that holds part of a character is shown and stored (a byte-level BPE piece of a CJK
// character, say), so distinct pieces stay distinct where U+FFFD would make them alike.
std::string utf8_escape_invalid(std::string_view bytes);

// Throws moe::Error(input) naming `where` when `text` is not well-formed UTF-8: "invalid UTF-8
// at byte offset N (byte 0xXX)".
void require_utf8(std::string_view text, const std::string& where);

}  // namespace moe
