// Scores of a forward step's rows of logits, made where the logits are: each row's negative
// log-likelihood of its target, its top-1 token, and its KL divergence from a row kept from an
// earlier step — what the ablation evaluator asks of a baseline and of each condition, and
// `moewb eval` of a text. The CPU backend scores its rows on the host (score_rows_on_host); the
// CUDA backend on the device, copying back a few numbers a row rather than the rows (102,400
// floats each for the 16B).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace moe {

namespace cpu {
class ThreadPool;
}

struct RowScore {
    double nll = 0;   // −ln softmax(row)[target]; 0 for a row without a target
    double kl = 0;    // Σ p · (ln p − ln q), p the reference row, q this row; 0 without a reference
    int32_t top = 0;  // moe::argmax of the row
};

// Rows of log-probabilities kept where a backend scores (host memory on the CPU, device memory
// on CUDA), [rows, width]; made by Model::make_score_bank.
class ScoreBank {
public:
    virtual ~ScoreBank() = default;
    virtual int64_t rows() const = 0;
    virtual int64_t width() const = 0;
    // Row r's log-probabilities into out [width] (for tests and checks).
    virtual void read_row(int64_t r, std::span<float> out) const = 0;
};

// What a scored step does with its rows beside scoring them. Rows [0, targets.size()) of the
// step are scored (a window's last token predicts nothing: its row may be left out).
struct ScoreRequest {
    std::span<const int32_t> targets;      // each scored row's target token; < 0: none (nll 0)
    ScoreBank* keep = nullptr;             // the rows' log-probabilities written to keep's rows
    int64_t keep_row = 0;                  //   [keep_row, keep_row + targets.size())
    const ScoreBank* reference = nullptr;  // KL from reference's rows
    int64_t reference_row = 0;             //   [reference_row, reference_row + targets.size())
};

// A row's log-probabilities as both paths make them: float(double(l) − ln Σ), ln Σ from
// log_sum_exp (engine/evaluate.h).
class HostScoreBank : public ScoreBank {
public:
    HostScoreBank(int64_t rows, int64_t width);
    int64_t rows() const override { return rows_; }
    int64_t width() const override { return width_; }
    void read_row(int64_t r, std::span<float> out) const override;
    float* row(int64_t r) { return data_.data() + static_cast<size_t>(r * width_); }
    const float* row(int64_t r) const { return data_.data() + static_cast<size_t>(r * width_); }

private:
    int64_t rows_, width_;
    std::vector<float> data_;
};

// Checks a request against a step of T rows of a vocabulary of V (an internal error when the
// caller got it wrong: a bank too short or of another width, more targets than rows, a target
// outside the vocabulary).
void check_score_request(const ScoreRequest& req, int64_t T, int64_t V);

// Scores rows of logits [≥ targets.size(), V] on the host, in parallel over the rows with
// `pool`: what the CPU backend's scored step does after its forward step. Banks must be
// HostScoreBanks. The same sums as evaluate.h's, so a row scored twice gets the same bits.
void score_rows_on_host(cpu::ThreadPool& pool, std::span<const float> logits, int64_t V, const ScoreRequest& req,
                        std::vector<RowScore>& out);

}  // namespace moe
