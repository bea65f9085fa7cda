// Scoring a step's rows of logits on the device (engine/scoring.h): each row's negative
// log-likelihood of its target, its top-1 token, its log-probabilities kept in a bank, its KL
// divergence from a kept row. For the .cu files; the model's scored step and the parity tests.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda::launch {

// One row's scores as the device writes them (RowScore's fields).
struct DeviceRowScore {
    double nll;
    double kl;
    int32_t top;
    int32_t pad;
};

// Rows [0, rows) of logits [rows, V], one block a row: the largest logit (NaN skipped, as
// log_sum_exp's max from the row's first) and its first index (moe::argmax's choice), ln Σ
// exp(l − max) with the sum in double (each thread's elements in order, then a fixed tree),
// nll = −(l[target] − max − ln Σ) where targets[r] ≥ 0 (targets may be null: no targets), the
// log-probabilities float(l − (max + ln Σ)) into keep [rows, V] when set, and Σ exp(p)·(p − q)
// in double over reference [rows, V] when set. The same formulas as the host's
// (score_rows_on_host); the sums' order, and so their last bits, differ.
void score_rows(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float* keep,
                const float* reference, DeviceRowScore* out, cudaStream_t s);

}  // namespace moe::cuda::launch
