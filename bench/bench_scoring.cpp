// bench_scoring: microseconds the ablation evaluator (analysis/ablation.cpp) spends on the host
// scoring one predicted token of one condition — its log-softmax, the target's NLL, the KL
// divergence from the baseline's log-probabilities and the top-1 choice — over a vocabulary of
// the published size (102,400), with the engine's row scoring on one thread
// (score_rows_on_host, engine/scoring.h) and, in the same run, as plain loops over std::exp in
// double (the evaluator's way before), printed as JSON. (The CUDA backend scores on the device.)
// Usage: bench_scoring [--vocab 102400] [--rows 200]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/scoring.h"

namespace {

struct Scores {
    double nll, kl;
    size_t top;
};

// The plain way: three passes of std::exp over the row (log-softmax, NLL, KL) and a scalar argmax.
Scores plain_row(const std::vector<float>& logits, const std::vector<float>& base_logp, std::vector<float>& logp,
                 int32_t target) {
    const size_t V = logits.size();
    double mx = logits[0];
    for (size_t v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
    double sum = 0;
    for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
    const double lse = mx + std::log(sum);
    for (size_t v = 0; v < V; ++v) logp[v] = static_cast<float>(static_cast<double>(logits[v]) - lse);
    double mx2 = logits[0], sum2 = 0;
    for (float l : logits) mx2 = std::max(mx2, static_cast<double>(l));
    for (float l : logits) sum2 += std::exp(static_cast<double>(l) - mx2);
    const double nll = -(static_cast<double>(logits[static_cast<size_t>(target)]) - mx2 - std::log(sum2));
    double kl = 0;
    for (size_t v = 0; v < V; ++v) {
        const double b = base_logp[v];
        kl += std::exp(b) * (b - static_cast<double>(logp[v]));
    }
    size_t best = 0;
    for (size_t v = 1; v < V; ++v)
        if (logits[v] > logits[best]) best = v;
    return {nll, kl, best};
}

// The evaluator's way now: its rows' scoring (engine/scoring.h) on one thread, the row
// against the baseline's kept log-probabilities.
Scores engine_row(moe::cpu::ThreadPool& pool, const std::vector<float>& logits, const moe::HostScoreBank& base,
                  int32_t target) {
    moe::ScoreRequest req;
    req.targets = std::span<const int32_t>(&target, 1);
    req.reference = &base;
    std::vector<moe::RowScore> out;
    moe::score_rows_on_host(pool, logits, static_cast<int64_t>(logits.size()), req, out);
    return {out[0].nll, out[0].kl, static_cast<size_t>(out[0].top)};
}

}  // namespace

int main(int argc, char** argv) {
    size_t vocab = 102400;
    int rows = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--vocab"))
            vocab = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--rows"))
            rows = std::atoi(argv[i + 1]);
    }
    if (vocab < 2 || rows < 1) {
        std::fprintf(stderr, "bench_scoring: --vocab must be at least 2 and --rows at least 1\n");
        return 2;
    }
    std::mt19937 rng(3);
    std::normal_distribution<float> noise(0.0f, 3.0f);
    std::vector<float> logits(vocab), base(vocab), logp(vocab);
    for (size_t v = 0; v < vocab; ++v) {
        base[v] = noise(rng);
        logits[v] = base[v] + 0.3f * noise(rng);
    }
    // The baseline's log-probabilities, kept as the evaluator keeps them.
    moe::cpu::ThreadPool pool(1);
    moe::HostScoreBank kept(1, static_cast<int64_t>(vocab));
    {
        const int32_t none = -1;
        moe::ScoreRequest keep;
        keep.targets = std::span<const int32_t>(&none, 1);
        keep.keep = &kept;
        std::vector<moe::RowScore> ignored;
        moe::score_rows_on_host(pool, base, static_cast<int64_t>(vocab), keep, ignored);
    }
    const std::vector<float> base_logp(kept.row(0), kept.row(0) + vocab);
    // Each way's scores of the rows (the target moves), and the largest difference between them.
    auto time = [&](auto&& row, std::vector<Scores>& got) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < rows; ++r) got.push_back(row(static_cast<int32_t>(r % vocab)));
        return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / rows;
    };
    std::vector<Scores> plain, engine;
    plain.reserve(static_cast<size_t>(rows));
    engine.reserve(static_cast<size_t>(rows));
    const double plain_us = time([&](int32_t t) { return plain_row(logits, base_logp, logp, t); }, plain);
    const double engine_us = time([&](int32_t t) { return engine_row(pool, logits, kept, t); }, engine);
    double nll_diff = 0, kl_diff = 0;
    bool same_top = true;
    for (size_t r = 0; r < plain.size(); ++r) {
        nll_diff = std::max(nll_diff, std::abs(engine[r].nll - plain[r].nll) / std::abs(plain[r].nll));
        kl_diff = std::max(kl_diff, std::abs(engine[r].kl - plain[r].kl) / std::abs(plain[r].kl));
        same_top = same_top && engine[r].top == plain[r].top;
    }
    const nlohmann::json out = {{"vocab", vocab},
                                {"rows", rows},
                                {"engine_us_per_row", engine_us},
                                {"plain_us_per_row", plain_us},
                                {"speedup", plain_us / engine_us},
                                {"nll_max_relative_difference", nll_diff},
                                {"kl_max_relative_difference", kl_diff},
                                {"same_top1", same_top}};
    std::cout << out.dump(1) << "\n";
}
