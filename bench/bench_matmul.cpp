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
    std::printf("%s\n", out.dump(1).c_str());
}
