// Scoring rows of logits on the host; see scoring.h.
#include "engine/scoring.h"

#include <algorithm>
#include <string>

#include "engine/cpu/thread_pool.h"
#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/sampler.h"

namespace moe {

HostScoreBank::HostScoreBank(int64_t rows, int64_t width)
    : rows_(rows), width_(width), data_(static_cast<size_t>(rows * width)) {
    MOE_ASSERT(rows >= 0 && width > 0);
}

void HostScoreBank::read_row(int64_t r, std::span<float> out) const {
    MOE_ASSERT(r >= 0 && r < rows_ && static_cast<int64_t>(out.size()) == width_);
    std::copy_n(row(r), width_, out.data());
}

void check_score_request(const ScoreRequest& req, int64_t T, int64_t V) {
    const auto n = static_cast<int64_t>(req.targets.size());
    MOE_ASSERT(n <= T);
    for (int32_t t : req.targets) MOE_ASSERT(t < V);
    if (req.keep) MOE_ASSERT(req.keep->width() == V && req.keep_row >= 0 && req.keep_row + n <= req.keep->rows());
    if (req.reference)
        MOE_ASSERT(req.reference->width() == V && req.reference_row >= 0 &&
                   req.reference_row + n <= req.reference->rows());
    // Rows kept into the bank the KL reads from: never the same rows (one row's writes would
    // race another's reads).
    if (req.keep && req.keep == req.reference && n > 0)
        MOE_ASSERT(req.keep_row + n <= req.reference_row || req.reference_row + n <= req.keep_row);
}

namespace {

// log-softmax of a row into out, float(double(l) − ln Σ); returns what it is made of.
LogSumExp log_softmax(std::span<const float> logits, float* out) {
    const LogSumExp z = log_sum_exp(logits);
    const double lse = z.log_z();
    for (size_t v = 0; v < logits.size(); ++v) out[v] = static_cast<float>(static_cast<double>(logits[v]) - lse);
    return z;
}

}  // namespace

void score_rows_on_host(cpu::ThreadPool& pool, std::span<const float> logits, int64_t V, const ScoreRequest& req,
                        std::vector<RowScore>& out) {
    const auto n = static_cast<int64_t>(req.targets.size());
    MOE_ASSERT(static_cast<int64_t>(logits.size()) >= n * V);
    check_score_request(req, n, V);
    auto* keep = dynamic_cast<HostScoreBank*>(req.keep);
    const auto* reference = dynamic_cast<const HostScoreBank*>(req.reference);
    MOE_ASSERT(!req.keep == !keep && !req.reference == !reference);
    out.assign(static_cast<size_t>(n), {});
    pool.parallel_for(n, [&](int64_t r, int) {
        const std::span<const float> row = logits.subspan(static_cast<size_t>(r * V), static_cast<size_t>(V));
        RowScore& s = out[static_cast<size_t>(r)];
        LogSumExp z;
        if (keep || reference) {
            // The row's log-probabilities: into the bank, or a buffer of this thread's for the KL.
            thread_local std::vector<float> scratch;
            float* lq = nullptr;
            if (keep) {
                lq = keep->row(req.keep_row + r);
            } else {
                if (scratch.size() < static_cast<size_t>(V)) scratch.resize(static_cast<size_t>(V));
                lq = scratch.data();
            }
            z = log_softmax(row, lq);
            if (reference)
                s.kl =
                    kl_divergence(std::span<const float>(reference->row(req.reference_row + r), static_cast<size_t>(V)),
                                  std::span<const float>(lq, static_cast<size_t>(V)));
        } else {
            z = log_sum_exp(row);
        }
        const int32_t target = req.targets[static_cast<size_t>(r)];
        if (target >= 0) s.nll = token_nll(row, target, z);
        s.top = argmax(row);
    });
}

}  // namespace moe
