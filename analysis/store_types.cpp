// Small helpers of the store records; see store_types.h.
#include "analysis/store_types.h"

namespace moe::analysis {

const RunLayer* RunInfo::layer(int64_t l) const {
    for (const RunLayer& x : layers)
        if (x.layer == l) return &x;
    return nullptr;
}

const StoredLayer* StoredDocument::layer(int64_t l) const {
    for (const StoredLayer& x : layers)
        if (x.layer == l) return &x;
    return nullptr;
}

size_t DocumentRouting::bytes() const {
    size_t n = sizeof(*this) + split.size() + name.size() + text_hash.size() + token_ids.size() * sizeof(int32_t);
    for (const Layer& l : layers)
        n += sizeof(Layer) + l.experts.size() * sizeof(int32_t) +
             (l.gate_weights.size() + l.entropy.size()) * sizeof(float);
    return n;
}

}  // namespace moe::analysis
