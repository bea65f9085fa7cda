// Decoders of a tokenizer.json: token strings -> text, as a chain over the list of token
// strings (HF decode_chain). ByteLevel (bytes back from GPT-2 characters, then lossy UTF-8),
// Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence. WordPiece, BPEDecoder and CTC
// belong to models this engine refuses and are refused too.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/json_util.h"

namespace moe::tok {

class DecoderStep {
public:
    virtual ~DecoderStep() = default;
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

class Decoder {
public:
    // nullptr for JSON null (then tokens are joined with spaces, as HF does).
    static std::unique_ptr<Decoder> parse(const Json& j, const std::string& path);

    std::string decode(std::vector<std::string> tokens) const;
    // True when the chain is a single ByteLevel step: each token then decodes to fixed bytes,
    // which the streaming decoder and token_text use directly.
    bool is_byte_level() const { return byte_level_only_; }

private:
    std::vector<std::unique_ptr<DecoderStep>> steps_;
    bool byte_level_only_ = false;
};

}  // namespace moe::tok
