// The loaded state of a Tokenizer (private to engine/tokenizer/): the BPE model, added tokens,
// normalizer, pre-tokenizer, post-processor and decoder of one tokenizer.json, plus the BOS/EOS
// policy from tokenizer_config.json and the id -> token tables used by decode.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/post_processor.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace moe::tok {

struct TokenizerImpl {
    std::string source;
    std::unique_ptr<BpeModel> model;
    AddedVocabulary added;
    std::unique_ptr<Normalizer> normalizer;  // null: none
    PreTokenizer pre_tokenizer;
    PostProcessor post;
    std::unique_ptr<Decoder> decoder;        // null: join tokens with spaces

    // Per id [vocab_size]: the string decode feeds to the decoder ("" = no token) and flags.
    std::vector<std::string> decode_string;
    std::vector<uint8_t> special;
    std::vector<uint8_t> is_added;
    StringIdMap added_ids;                   // added token content -> id

    // BOS/EOS: from tokenizer_config.json when it has add_bos_token/add_eos_token (then they
    // replace the post-processor, as transformers' LlamaTokenizerFast does), else from the
    // post-processor.
    bool config_decides = false;
    bool add_bos = false, add_eos = false;
    std::optional<int32_t> bos, eos;

    int32_t vocab_size() const { return static_cast<int32_t>(decode_string.size()); }
};

// Parses both files (config text may be empty) into a TokenizerImpl; errors name `origin`.
std::shared_ptr<const TokenizerImpl> load_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                                    const std::string& origin, const std::string& config_origin);

}  // namespace moe::tok
