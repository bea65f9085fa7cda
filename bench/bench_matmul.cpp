// Microbenchmark of the CPU matrix kernels: y = x · Wᵀ for one token (decode, bandwidth
// bound) and for a block of tokens (prefill, compute bound), per weight dtype. Prints JSON:
// GB/s of weights read and GFLOP/s. Not a test.
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cpu/matmul.h"
#include "engine/cpu/thread_pool.h"

namespace {

double seconds_per_call(const std::function<void()>& f, double min_seconds) {
    using clock = std::chrono::steady_clock;
    f();  // warm up
    int64_t n = 0;
    auto t0 = clock::now();
    double el = 0;
    do {
        f();
        ++n;
        el = std::chrono::duration<double>(clock::now() - t0).count();
    } while (el < min_seconds);
    return el / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    moe::cpu::ThreadPool pool(threads);
    const int64_t N = 4096, K = 1024;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> wf(static_cast<size_t>(N * K));
    for (auto& v : wf) v = u(rng);
    std::vector<uint16_t> wb(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) wb[i] = moe::f32_to_bf16(wf[i]);
    nlohmann::json out = {{"kernel", moe::cpu::matmul_kernel_name()}, {"threads", threads}, {"N", N}, {"K", K}};
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t T : {1, 4, 64, 512}) {
        std::vector<float> x(static_cast<size_t>(T * K)), y(static_cast<size_t>(T * N));
        for (auto& v : x) v = u(rng);
        for (auto dt : {moe::DType::f32, moe::DType::bf16}) {
            moe::cpu::WeightMatrix w{dt == moe::DType::f32 ? static_cast<const void*>(wf.data()) : wb.data(), dt, N, K, K};
            const double s = seconds_per_call([&] { moe::cpu::matmul(x.data(), T, K, w, y.data(), N, pool); }, 0.3);
            rows.push_back({{"tokens", T},
                            {"dtype", moe::dtype_name(dt)},
                            {"microseconds", s * 1e6},
                            {"weight_GB_s", static_cast<double>(N * K * moe::dtype_size(dt)) / s / 1e9},
                            {"GFLOP_s", 2.0 * T * N * K / s / 1e9}});
        }
    }
    out["results"] = rows;
    // Decode streams weights from memory, not cache: one token against 48 distinct
    // matrices (≈ 800 MB F32, 400 MB BF16), so the figure is memory bandwidth.
    nlohmann::json streaming = nlohmann::json::array();
    for (auto dt : {moe::DType::f32, moe::DType::bf16}) {
        const int n_mats = 48;
        std::vector<std::vector<uint8_t>> mats(n_mats, std::vector<uint8_t>(static_cast<size_t>(N * K) * moe::dtype_size(dt), 0x3c));
        std::vector<float> x(static_cast<size_t>(K), 0.5f), y(static_cast<size_t>(N));
        const double s = seconds_per_call([&] {
            for (auto& m : mats) {
                moe::cpu::WeightMatrix w{m.data(), dt, N, K, K};
                moe::cpu::matmul(x.data(), 1, K, w, y.data(), N, pool);
            }
        }, 1.0);
        streaming.push_back({{"dtype", moe::dtype_name(dt)},
                             {"bytes", static_cast<double>(n_mats) * static_cast<double>(mats[0].size())},
                             {"weight_GB_s", static_cast<double>(n_mats) * static_cast<double>(mats[0].size()) / s / 1e9}});
    }
    out["decode_streaming"] = streaming;
    std::printf("%s\n", out.dump(1).c_str());
}
