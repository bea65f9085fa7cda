// bench_sampler: microseconds per next-token choice of moe::Sampler over a vocabulary of the
// published size (102,400, DeepSeekMoE 16B and V2), printed as JSON. Two shapes of logits: "flat"
// (a random-weight model: every id about as likely) and "peaked" (a trained model: a few ids
// far above a wide tail), each with the settings a chat uses. "full_sort_us" is the same draw
// with the whole vocabulary sorted first, the plain way, and "first_larger_loop_us" greedy as a
// plain loop keeping the first larger logit, both measured in the same run.
// Usage: bench_sampler [--vocab 102400] [--draws 2000]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"

namespace {

std::vector<float> make_logits(const std::string& shape, size_t vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, shape == "flat" ? 0.5f : 2.0f);
    std::vector<float> l(vocab);
    for (auto& x : l) x = noise(rng);
    if (shape == "peaked") {
        std::uniform_int_distribution<size_t> id(0, vocab - 1);
        for (int i = 0; i < 20; ++i) l[id(rng)] = 18.0f - 0.4f * static_cast<float>(i);
    }
    return l;
}

// Greedy as a plain loop: the first logit larger than every one before it (not inlined, as a
// call on logits it cannot see).
[[gnu::noinline]] int64_t first_larger(const std::vector<float>& l) {
    int64_t best = 0;
    for (size_t i = 1; i < l.size(); ++i)
        if (l[i] > l[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
    return best;
}

// Softmax over the whole vocabulary sorted by logit, cut by top-k and top-p, then drawn.
int32_t full_sort_draw(std::vector<float> l, const moe::SamplingParams& p, std::mt19937_64& rng) {
    std::vector<int32_t> order(l.size());
    for (size_t i = 0; i < l.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] != l[b] ? l[a] > l[b] : a < b; });
    if (p.top_k > 0 && static_cast<size_t>(p.top_k) < order.size()) order.resize(static_cast<size_t>(p.top_k));
    std::vector<double> w(order.size());
    double sum = 0;
    for (size_t i = 0; i < order.size(); ++i) sum += w[i] = std::exp((l[order[i]] - l[order[0]]) / p.temperature);
    size_t n = order.size();
    double acc = 0;
    for (size_t i = 0; p.top_p < 1.0f && i < n; ++i)
        if ((acc += w[i]) >= p.top_p * sum) n = i + 1;
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += w[i];
    double r = std::uniform_real_distribution<double>(0.0, total)(rng);
    for (size_t i = 0; i < n; ++i)
        if ((r -= w[i]) < 0) return order[i];
    return order[n - 1];
}

template <class F>
double us_per_draw(int draws, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < draws; ++i) f();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / draws;
}

}  // namespace

int main(int argc, char** argv) {
    size_t vocab = 102400;
    int draws = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--vocab")) vocab = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--draws")) draws = std::atoi(argv[i + 1]);
    }
    if (vocab < 64 || draws < 1) {
        std::fprintf(stderr, "bench_sampler: --vocab must be at least 64 and --draws at least 1\n");
        return 2;
    }
    struct Setting {
        const char* name;
        moe::SamplingParams p;
    };
    const Setting settings[] = {{"greedy", {0.0f, 0, 1.0f, 1.0f, 1}},
                                {"temperature 0.7", {0.7f, 0, 1.0f, 1.0f, 1}},
                                {"temperature 0.7, top-p 0.95", {0.7f, 0, 0.95f, 1.0f, 1}},
                                {"temperature 0.7, top-k 50", {0.7f, 50, 1.0f, 1.0f, 1}}};
    nlohmann::json out = {{"vocab", vocab}, {"draws", draws}, {"results", nlohmann::json::array()}};
    for (const char* shape : {"flat", "peaked"}) {
        const std::vector<float> base = make_logits(shape, vocab, 7);
        for (const auto& s : settings) {
            moe::Sampler sampler(s.p);
            std::vector<float> l;
            int64_t sink = 0;
            const double ours = us_per_draw(draws, [&] {
                l = base;
                sink += sampler.sample(l, {});
            });
            std::mt19937_64 rng(1);
            const double full = s.p.temperature == 0.0f ? 0.0 : us_per_draw(draws, [&] { sink += full_sort_draw(base, s.p, rng); });
            // Greedy against the plain loop keeping the first larger logit (before the checksum,
            // which keeps the loop's results in use).
            const double loop = s.p.temperature == 0.0f ? us_per_draw(draws,
                                                                      [&] {
                                                                          l = base;
                                                                          sink += first_larger(l);
                                                                      })
                                                        : 0.0;
            nlohmann::json r = {{"logits", shape}, {"setting", s.name}, {"us_per_draw", ours}, {"checksum", sink}};
            if (full > 0) r["full_sort_us"] = full;
            if (loop > 0) r["first_larger_loop_us"] = loop;
            out["results"].push_back(r);
        }
    }
    std::cout << out.dump(1) << "\n";
}
