// The CUDA backend's own profile of a forward step, by stage. For the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::cuda::detail {

// Where a step's device time goes (MOEWB_CUDA_STAGES=1 in the environment; steps then run
// launch by launch, no CUDA graphs): an event after each stage's launches, the elapsed time
// between events summed per stage over steps of one and of several tokens (the first of each
// not counted), the totals
// written to standard error when the model is released. Off: every call returns at once.
class StageClock {
public:
    StageClock();
    ~StageClock();
    StageClock(const StageClock&) = delete;
    StageClock& operator=(const StageClock&) = delete;
    bool on() const { return on_; }
    void begin(cudaStream_t s, int64_t tokens);
    // The launches enqueued since the last mark belong to `stage`.
    void mark(const char* stage) {
        if (on_ && stream_) record(stage);
    }
    // For a launch that times its own stages (the decode layer kernel): room on the device for
    // n + 1 time stamps (ns, %globaltimer: the start of each of its n stages, then its end),
    // which end() reads back and adds to the totals as `names` [n] (static strings), each
    // prefixed by `prefix`; null when the clock is off or the step has no room left.
    unsigned long long* inside(const char* prefix, const char* const* names, int n);
    void end();

private:
    void record(const char* stage);
    bool on_ = false;
    cudaStream_t stream_ = nullptr;
    bool decode_ = false;
    std::vector<cudaEvent_t> events_;
    std::vector<const char*> names_;
    size_t used_ = 0;
    struct Total {
        double ms = 0;
        int64_t count = 0;
    };
    std::vector<std::pair<std::string, Total>> totals_[2];  // [prefill, decode], in first-seen order
    void add(const std::string& name, double ms);
    // The launches' own stamps (inside()): device and host copies, and what each group names.
    static constexpr size_t kStamps = 4096;
    unsigned long long* stamps_device_ = nullptr;
    std::vector<unsigned long long> stamps_host_;
    size_t stamps_used_ = 0;
    struct Group {
        size_t first;
        std::string prefix;
        const char* const* names;
        int n;
    };
    std::vector<Group> groups_;
    int64_t steps_[2] = {0, 0};
    bool warm_[2] = {false, false};
};

}  // namespace moe::cuda::detail
