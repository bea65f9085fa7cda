// Attention implementation; see attention.h. Scores for a block of queries of one head
// are a matmul against that head's cached keys; softmax runs in f32 per row; the
// weighted sum of values accumulates in f32.
#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/arena.h"
#include "engine/cpu/thread_pool.h"

namespace moe::cpu {

void attention_forward(const AttentionWeights& w, const float* x, int64_t T, int64_t H, KvCache& cache,
                       int64_t layer, const RopeTables& rope, float* out, ThreadPool& pool, Arena& arena) {
    const int64_t nh = w.n_heads, nkv = w.n_kv_heads, hd = w.head_dim;
    const int64_t qdim = nh * hd, kvdim = nkv * hd;
    const int64_t pos0 = cache.length();
    cache.reserve(pos0 + T);
    float* kc = cache.keys(layer);
    float* vc = cache.values(layer);

    float* q = arena.alloc<float>(static_cast<size_t>(T * qdim));  // [T, nh·hd]
    matmul(x, T, H, w.q, q, qdim, pool);
    matmul(x, T, H, w.k, kc + pos0 * kvdim, kvdim, pool);  // straight into the cache
    matmul(x, T, H, w.v, vc + pos0 * kvdim, kvdim, pool);
    apply_rope_halves(q, T, nh, hd, qdim, rope);
    apply_rope_halves(kc + pos0 * kvdim, T, nkv, hd, kvdim, rope);

    const int64_t group = nh / nkv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t qblock = 16;
    const int64_t n_qblocks = (T + qblock - 1) / qblock;
    float* o = arena.alloc<float>(static_cast<size_t>(T * qdim));  // [T, nh·hd]
    const int64_t scratch_per_thread = qblock * (pos0 + T);            // [qblock, keys]
    float* scratch = arena.alloc<float>(static_cast<size_t>(pool.size() * scratch_per_thread));
    pool.parallel_for(nh * n_qblocks, [&](int64_t task, int thread) {
        const int64_t h = task / n_qblocks, b = task % n_qblocks;
        const int64_t g = h / group;
        const int64_t t0 = b * qblock, t1 = std::min(T, t0 + qblock);
        const int64_t n_keys = pos0 + t1;  // keys visible to the last query of the block
        float* s = scratch + thread * scratch_per_thread;
        WeightMatrix keys{kc + g * hd, DType::f32, n_keys, hd, kvdim};
        matmul_rows(q + t0 * qdim + h * hd, t1 - t0, qdim, keys, 0, n_keys, s, n_keys);
        for (int64_t t = t0; t < t1; ++t) {
            float* row = s + (t - t0) * n_keys;
            const int64_t visible = pos0 + t + 1;
            for (int64_t j = 0; j < visible; ++j) row[j] *= scale;
            softmax_row(row, visible);
            weighted_row_sum(row, visible, vc + g * hd, kvdim, hd, o + t * qdim + h * hd);
        }
    });
    matmul(o, T, qdim, w.o, out, H, pool);
}

}  // namespace moe::cpu
