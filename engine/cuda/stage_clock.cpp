// StageClock; see stage_clock.h.
#include "engine/cuda/stage_clock.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/cuda/device.h"

namespace moe::cuda::detail {

StageClock::StageClock() {
    const char* env = std::getenv("MOEWB_CUDA_STAGES");
    on_ = env && std::string(env) == "1";
}

StageClock::~StageClock() {
    for (int d = 0; d < 2; ++d) {
        if (!steps_[d]) continue;
        double all = 0;
        for (const auto& [name, t] : totals_[d]) all += t.ms;
        std::fprintf(stderr, "cuda stages, %s: %lld steps, %.3f ms per step\n", d ? "one token" : "several tokens",
                     static_cast<long long>(steps_[d]), all / static_cast<double>(steps_[d]));
        for (const auto& [name, t] : totals_[d])
            std::fprintf(stderr, "  %-16s %9.1f us per step  %5.1f%%  (%lld groups of launches)\n", name.c_str(),
                         1000.0 * t.ms / static_cast<double>(steps_[d]), 100.0 * t.ms / all, static_cast<long long>(t.count));
    }
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    if (stamps_device_) cudaFree(stamps_device_);
}

unsigned long long* StageClock::inside(const char* prefix, const char* const* names, int n) {
    if (!on_ || !stream_ || n <= 0) return nullptr;
    if (!stamps_device_) {
        check(cudaMalloc(&stamps_device_, kStamps * sizeof(unsigned long long)), "allocating the stage stamps");
        stamps_host_.resize(kStamps);
    }
    if (stamps_used_ + static_cast<size_t>(n) + 1 > kStamps) return nullptr;
    groups_.push_back(Group{stamps_used_, prefix, names, n});
    unsigned long long* at = stamps_device_ + stamps_used_;
    stamps_used_ += static_cast<size_t>(n) + 1;
    return at;
}

void StageClock::add(const std::string& name, double ms) {
    auto& totals = totals_[decode_ ? 1 : 0];
    auto it = std::find_if(totals.begin(), totals.end(), [&](const auto& t) { return t.first == name; });
    if (it == totals.end()) it = totals.insert(totals.end(), {name, Total{}});
    it->second.ms += ms;
    ++it->second.count;
}

void StageClock::begin(cudaStream_t s, int64_t tokens) {
    if (!on_) return;
    stream_ = s;
    decode_ = tokens == 1;
    used_ = 0;
    names_.clear();
    stamps_used_ = 0;
    groups_.clear();
    record("");
}

void StageClock::record(const char* stage) {
    if (used_ == events_.size()) {
        cudaEvent_t e = nullptr;
        check(cudaEventCreate(&e), "creating a stage event");
        events_.push_back(e);
    }
    check(cudaEventRecord(events_[used_++], stream_), "recording a stage event");
    names_.push_back(stage);
}

void StageClock::end() {
    if (!on_ || !stream_ || used_ < 2) return;
    check(cudaEventSynchronize(events_[used_ - 1]), "waiting for the stage events");
    // The first step of each kind warms up (modules loaded, cuBLAS's choices): not counted.
    if (!warm_[decode_ ? 1 : 0]) {
        warm_[decode_ ? 1 : 0] = true;
        stream_ = nullptr;
        return;
    }
    for (size_t i = 1; i < used_; ++i) {
        float ms = 0;
        check(cudaEventElapsedTime(&ms, events_[i - 1], events_[i]), "reading a stage event");
        add(names_[i], ms);
    }
    // The launches' own stages: reported beside the stage that holds them (their sum is part
    // of it), each the time from its start to the next one's.
    if (stamps_used_) {
        check(cudaMemcpy(stamps_host_.data(), stamps_device_, stamps_used_ * sizeof(unsigned long long),
                         cudaMemcpyDeviceToHost),
              "reading the stage stamps");
        for (const Group& g : groups_)
            for (int i = 0; i < g.n; ++i)
                add(g.prefix + g.names[i],
                    1e-6 * static_cast<double>(stamps_host_[g.first + i + 1] - stamps_host_[g.first + i]));
    }
    ++steps_[decode_ ? 1 : 0];
    stream_ = nullptr;
}

}  // namespace moe::cuda::detail
