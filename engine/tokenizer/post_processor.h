// Post-processors of a tokenizer.json, for a single sequence: what ids go before and after the
// encoded text when special tokens are requested. TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel (ids unchanged: it only trims offsets) and Sequence of these.
// The pair templates are read but not used (the engine encodes one sequence at a time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/json_util.h"

namespace moe::tok {

struct PostProcessor {
    std::vector<int32_t> prefix;  // [n_prefix] ids before the text
    std::vector<int32_t> suffix;  // [n_suffix] ids after the text

    // `vocab_size` bounds the ids the template names.
    static PostProcessor parse(const Json& j, const std::string& path, int64_t vocab_size);
};

}  // namespace moe::tok
