// The CUDA model's scored steps (Model::forward_scored): the rows of logits scored on the device
// where the forward step left them, a few numbers a row copied back; the banks of
// log-probabilities in device memory.
#include <cuda_runtime.h>

#include <cstring>

#include "engine/cuda/cuda_model_impl.h"
#include "engine/cuda/score_kernels.h"

namespace moe::cuda::detail {

namespace {

// Rows of log-probabilities in device memory, [rows, width] f32.
class DeviceScoreBank : public ScoreBank {
public:
    DeviceScoreBank(int64_t rows, int64_t width)
        : rows_(rows),
          width_(width),
          mem_(device_alloc_for(static_cast<std::size_t>(rows * width) * sizeof(float),
                                "the log-probabilities of " + std::to_string(rows) + " positions")) {}
    int64_t rows() const override { return rows_; }
    int64_t width() const override { return width_; }
    void read_row(int64_t r, std::span<float> out) const override {
        MOE_ASSERT(r >= 0 && r < rows_ && static_cast<int64_t>(out.size()) == width_);
        check(cudaMemcpy(out.data(), row(r), static_cast<std::size_t>(width_) * sizeof(float), cudaMemcpyDeviceToHost),
              "reading a row of log-probabilities");
    }
    float* row(int64_t r) const { return static_cast<float*>(mem_.get()) + r * width_; }

private:
    int64_t rows_, width_;
    DeviceMem mem_;
};

float* bank_row(const ScoreBank* bank, int64_t r) {
    if (!bank) return nullptr;
    const auto* d = dynamic_cast<const DeviceScoreBank*>(bank);
    MOE_ASSERT(d && "a scored CUDA step takes the banks its model made");
    return d->row(r);
}

}  // namespace

std::unique_ptr<ScoreBank> CudaDeepseekMoe::make_score_bank(int64_t rows) const {
    MOE_ASSERT(rows >= 0);
    std::lock_guard<std::mutex> lock(forward_mutex_);
    check(cudaSetDevice(0), "selecting device 0");
    return std::make_unique<DeviceScoreBank>(rows, config_.vocab_size);
}

void CudaDeepseekMoe::forward_scored(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                                     const ScoreRequest& req, std::vector<RowScore>& scores) const {
    const int64_t T = static_cast<int64_t>(ids.size()), V = config_.vocab_size;
    const auto n = static_cast<int64_t>(req.targets.size());
    check_score_request(req, T, V);
    float* keep = bank_row(req.keep, req.keep_row);
    const float* reference = bank_row(req.reference, req.reference_row);
    const int64_t pos0 = cache.length();
    std::lock_guard<std::mutex> lock(forward_mutex_);
    scores.clear();
    if (T == 0) return;
    ForwardOptions all = opt;
    all.all_logits = true;  // every row scored, on the launch-by-launch path (no decode graph)
    DeviceCache* dc = nullptr;
    const Step s = begin_step(T, cache, all, T, 0, dc);  // no logits to the host
    const HostInputs h = carve_inputs(pinned_.get(), T, 0);
    enqueue_step(ids, pos0, *dc, all, s, h);
    if (n > 0) {
        std::memcpy(h.targets, req.targets.data(), static_cast<std::size_t>(n) * sizeof(int32_t));
        check(cudaMemcpyAsync(s.targets, h.targets, static_cast<std::size_t>(n) * sizeof(int32_t),
                              cudaMemcpyHostToDevice, stream_),
              "copying the scored rows' targets");
        launch::score_rows(s.logits, n, V, s.targets, keep, reference, s.scores, stream_);
        check(cudaMemcpyAsync(h.scores, s.scores, static_cast<std::size_t>(n) * sizeof(launch::DeviceRowScore),
                              cudaMemcpyDeviceToHost, stream_),
              "copying the rows' scores to the host");
    }
    stage("scores out");
    finish_step(all, cache, pos0 + T, "running the scored step");
    scores.resize(static_cast<std::size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
        const launch::DeviceRowScore& d = h.scores[r];
        scores[static_cast<std::size_t>(r)] = RowScore{d.nll, d.kl, d.top};
    }
}

}  // namespace moe::cuda::detail
