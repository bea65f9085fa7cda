// Loss evaluation; see evaluate.h.
#include "engine/evaluate.h"

#include <algorithm>

#include "engine/error.h"

namespace moe {

namespace {
constexpr size_t kChunk = 256;  // tokens per forward step inside a window
}  // namespace

double token_nll(std::span<const float> logits, int32_t target) {
    double mx = logits[0];
    for (float l : logits) mx = std::max(mx, static_cast<double>(l));
    double sum = 0;
    for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
    return -(static_cast<double>(logits[static_cast<size_t>(target)]) - mx - std::log(sum));
}

EvalResult evaluate_loss(const Model& model, std::span<const int32_t> ids, int64_t context, const ExpertMask* mask,
                         RoutingObserver* observer) {
    if (ids.size() < 2) throw_input_error("eval", "need at least 2 tokens to predict one");
    MOE_ASSERT(context >= 2);
    const int64_t V = model.config().vocab_size;
    EvalResult r;
    std::vector<float> logits;
    for (size_t start = 0; start + 1 < ids.size(); start += static_cast<size_t>(context)) {
        const size_t n = std::min(ids.size() - start, static_cast<size_t>(context));
        if (n < 2) break;
        // Within a window, prefill in chunks through the KV cache so the logits buffer stays
        // [chunk, V] however long the context is.
        Session s(model);
        ForwardOptions opt;
        opt.mask = mask;
        opt.observer = observer;
        for (size_t c0 = 0; c0 < n; c0 += kChunk) {
            const size_t cn = std::min(kChunk, n - c0);
            s.forward(ids.subspan(start + c0, cn), opt, logits);
            for (size_t t = 0; t < cn; ++t) {
                const size_t pos = c0 + t;  // in the window
                if (pos + 1 >= n) break;
                r.total_nll += token_nll(std::span<const float>(logits).subspan(t * V, V), ids[start + pos + 1]);
                ++r.predicted;
            }
        }
    }
    return r;
}

}  // namespace moe
