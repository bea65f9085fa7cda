// Text generation: prefill the prompt, then decode token by token with the KV cache,
// sampling each next token, until EOS, a stop string or the token budget. Text is
// streamed through a callback in pieces that never split a UTF-8 character and never
// show a stop string (text that may be the start of one is held back until decided).
// Routing of prompt and generated tokens goes to the observer, marked as such.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/routing.h"
#include "engine/sampler.h"

namespace moe {

class Tokenizer;

struct GenerateParams {
    SamplingParams sampling;
    int64_t max_new_tokens = 128;
    std::vector<std::string> stop_strings;
    bool stop_at_eos = true;
    std::vector<int32_t> eos_ids;  // tokens that end generation (the tokenizer's EOS if empty)
    const ExpertMask* mask = nullptr;
    RoutingObserver* observer = nullptr;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids (the EOS included when it ended generation)
    std::string text;             // the streamed text (stop string excluded)
    std::string stop_reason;      // "eos" | "stop_string" | "max_new_tokens" | "cancelled"
    double prefill_seconds = 0, decode_seconds = 0;
    int64_t prompt_tokens = 0;
};

// on_text receives each piece of text as it becomes final; returning false cancels.
// Without a tokenizer (null) generation works on ids alone: no text, no stop strings,
// on_text is never called.
GenerateResult generate(const Model& model, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateParams& params, const std::function<bool(std::string_view)>& on_text);

// Holds back streamed text that could still turn into a stop string.
class StopStringFilter {
public:
    explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    // Adds text; returns what can be shown now. After a stop string is found, stopped()
    // is true and nothing more is returned.
    std::string push(std::string_view text);
    std::string finish();  // what is still held back, when generation ends without a stop
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

}  // namespace moe
