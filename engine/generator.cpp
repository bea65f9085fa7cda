// Generation loop and stop-string filter; see generator.h.
#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>

#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moe {

std::string StopStringFilter::push(std::string_view text) {
    if (stopped_) return {};
    pending_ += text;
    size_t cut = std::string::npos;
    for (const auto& s : stops_) {
        if (s.empty()) continue;
        size_t p = pending_.find(s);
        if (p != std::string::npos) cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
        stopped_ = true;
        std::string out = pending_.substr(0, cut);
        pending_.clear();
        return out;
    }
    // Keep the longest suffix that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_)
        for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); n > hold; --n)
            if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                hold = n;
                break;
            }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StopStringFilter::finish() {
    std::string out;
    if (!stopped_) out.swap(pending_);
    return out;
}

GenerateResult generate(const Model& model, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateParams& params, const std::function<bool(std::string_view)>& on_text) {
    using clock = std::chrono::steady_clock;
    if (prompt.empty()) throw_input_error("prompt", "is empty");
    GenerateResult res;
    res.prompt_tokens = static_cast<int64_t>(prompt.size());
    std::vector<int32_t> eos = params.eos_ids;
    if (eos.empty() && tokenizer && tokenizer->eos_id()) eos.push_back(*tokenizer->eos_id());
    if (eos.empty() && model.config().eos_token_id) eos.push_back(static_cast<int32_t>(*model.config().eos_token_id));

    Session session(model);
    Sampler sampler(params.sampling);
    std::optional<StreamDecoder> decoder;
    if (tokenizer) decoder.emplace(*tokenizer);
    else if (!params.stop_strings.empty()) throw_input_error("generate", "stop strings need a tokenizer");
    StopStringFilter filter(params.stop_strings);
    std::vector<int32_t> history = prompt;
    std::vector<float> logits;
    // Ids of the model's vocabulary that name no token of the tokenizer are never chosen: the
    // rows a published vocabulary is padded with (DeepSeekMoE 16B: 102,400 logits over 100,015
    // tokens) are not text, and a random or lightly trained model gives them real probability.
    std::vector<int32_t> unnamed;
    if (tokenizer)
        for (int64_t id = 0; id < model.config().vocab_size; ++id)
            if (!tokenizer->names(static_cast<int32_t>(id))) unnamed.push_back(static_cast<int32_t>(id));
    if (tokenizer && static_cast<int64_t>(unnamed.size()) == model.config().vocab_size)
        throw_input_error(tokenizer->source(), "names none of the model's " + std::to_string(model.config().vocab_size) + " token ids");
    ForwardOptions opt;
    opt.mask = params.mask;
    opt.observer = params.observer;
    opt.all_logits = false;

    auto emit = [&](const std::string& piece) {
        if (piece.empty()) return true;
        res.text += piece;
        return on_text ? on_text(piece) : true;
    };

    auto t0 = clock::now();
    session.forward(prompt, opt, logits);
    res.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    opt.source = TokenSource::generated;
    res.stop_reason = "max_new_tokens";
    auto t1 = clock::now();
    for (int64_t n = 0; n < params.max_new_tokens; ++n) {
        for (int32_t id : unnamed) logits[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
        const int32_t next = sampler.sample(logits, history);
        res.tokens.push_back(next);
        history.push_back(next);
        if (params.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
            res.stop_reason = "eos";
            break;
        }
        if (decoder && !emit(filter.push(decoder->push(next)))) {
            res.stop_reason = "cancelled";
            break;
        }
        if (filter.stopped()) {
            res.stop_reason = "stop_string";
            break;
        }
        if (n + 1 == params.max_new_tokens) break;
        const int32_t one[1] = {next};
        session.forward(one, opt, logits);
    }
    res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    if (decoder && res.stop_reason != "stop_string" && res.stop_reason != "cancelled") {
        emit(filter.push(decoder->finish()));
        emit(filter.finish());
    }
    return res;
}

}  // namespace moe
