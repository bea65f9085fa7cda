// Multi-head Latent Attention; see mla_attention.h. Work is split over (head, block of
// queries) tasks as in attention.cpp; softmax runs in f32 per row.
#include "engine/cpu/mla_attention.h"

#include <algorithm>

#include "engine/cpu/arena.h"
#include "engine/cpu/thread_pool.h"
#include "engine/error.h"

namespace moe::cpu {

void mla_forward(const MlaWeights& w, const float* x, int64_t T, int64_t H, KvCache& cache, int64_t layer,
                 const RopeTables& rope, MlaForm form, float* out, ThreadPool& pool, Arena& arena) {
    const int64_t nh = w.n_heads, dn = w.nope_dim, dr = w.rope_dim, dv = w.v_dim, c = w.latent_dim;
    const int64_t dq = dn + dr, qdim = nh * dq, row = c + dr, kvb = dn + dv;
    const int64_t pos0 = cache.length();
    const int64_t P = pos0 + T;  // positions visible to the last query
    MOE_ASSERT(cache.kv_dim() == row);
    cache.reserve(P);
    float* kc = cache.keys(layer);  // [capacity, c + dr]: latent, then RoPE key

    // Queries [T, nh, dq] (per head: no-RoPE part first, RoPE part last).
    float* q = arena.alloc<float>(static_cast<size_t>(T * qdim));
    if (w.q_lora_rank == 0) {
        matmul(x, T, H, w.q, q, qdim, pool);
    } else {
        float* qa = arena.alloc<float>(static_cast<size_t>(T * w.q_lora_rank));
        matmul(x, T, H, w.q_a, qa, w.q_lora_rank, pool);
        rms_norm(qa, w.q_a_norm.data(), T, w.q_lora_rank, kMlaNormEps, qa);
        matmul(qa, T, w.q_lora_rank, w.q_b, q, qdim, pool);
    }
    // The new positions' latent and RoPE key, straight into the cache.
    float* new_rows = kc + pos0 * row;
    matmul(x, T, H, w.kv_a, new_rows, row, pool);
    for (int64_t t = 0; t < T; ++t) rms_norm(new_rows + t * row, w.kv_a_norm.data(), 1, c, kMlaNormEps, new_rows + t * row);
    apply_rope_pairs(q + dn, T, nh, dq, dr, qdim, rope);
    apply_rope_pairs(new_rows + c, T, 1, row, dr, row, rope);

    const bool expanded = form == MlaForm::expanded || (form == MlaForm::automatic && pos0 == 0);
    float* kv = nullptr;  // expanded: [P, nh·(dn + dv)]
    if (expanded) {
        kv = arena.alloc<float>(static_cast<size_t>(P * nh * kvb));
        matmul(kc, P, row, w.kv_b, kv, nh * kvb, pool);
    }

    const float scale = w.softmax_scale;
    constexpr int64_t qblock = 16;
    const int64_t n_qblocks = (T + qblock - 1) / qblock;
    float* o = arena.alloc<float>(static_cast<size_t>(T * nh * dv));  // [T, nh·dv]
    // Per thread: scores [qblock, P], two score parts, and (absorbed) q_lat/ctx [qblock, c].
    const int64_t per_thread = 2 * qblock * P + 2 * qblock * c;
    float* scratch = arena.alloc<float>(static_cast<size_t>(pool.size() * per_thread));
    pool.parallel_for(nh * n_qblocks, [&](int64_t task, int thread) {
        const int64_t h = task / n_qblocks, b = task % n_qblocks;
        const int64_t t0 = b * qblock, t1 = std::min(T, t0 + qblock), nq = t1 - t0;
        const int64_t n_keys = pos0 + t1;
        float* s = scratch + thread * per_thread;  // [nq, n_keys]
        float* s2 = s + qblock * P;                // [nq, n_keys] RoPE part
        float* lat = s2 + qblock * P;              // [nq, c]
        float* ctx = lat + qblock * c;             // [nq, c]
        const float* qh = q + t0 * qdim + h * dq;
        if (expanded) {
            const WeightMatrix keys{kv + h * kvb, DType::f32, n_keys, dn, nh * kvb};
            matmul_rows(qh, nq, qdim, keys, 0, n_keys, s, n_keys);
        } else {
            // q_lat = q_nope · W_uk,h: rows [h·(dn+dv), h·(dn+dv)+dn) of kv_b_proj, transposed.
            matmul_transposed_rows(qh, nq, qdim, w.kv_b, h * kvb, dn, lat, c);
            const WeightMatrix latents{kc, DType::f32, n_keys, c, row};
            matmul_rows(lat, nq, c, latents, 0, n_keys, s, n_keys);
        }
        const WeightMatrix rope_keys{kc + c, DType::f32, n_keys, dr, row};
        matmul_rows(qh + dn, nq, qdim, rope_keys, 0, n_keys, s2, n_keys);
        for (int64_t t = t0; t < t1; ++t) {
            float* sr = s + (t - t0) * n_keys;
            const float* sr2 = s2 + (t - t0) * n_keys;
            const int64_t visible = pos0 + t + 1;
            for (int64_t j = 0; j < visible; ++j) sr[j] = (sr[j] + sr2[j]) * scale;
            softmax_row(sr, visible);
            if (expanded)
                weighted_row_sum(sr, visible, kv + h * kvb + dn, nh * kvb, dv, o + t * nh * dv + h * dv);
            else
                weighted_row_sum(sr, visible, kc, row, c, ctx + (t - t0) * c);
        }
        if (!expanded) {
            // out_h = ctx · W_uv,hᵀ: rows [h·(dn+dv)+dn, (h+1)·(dn+dv)) of kv_b_proj.
            const WeightMatrix uv = w.kv_b.row_slice(h * kvb + dn, dv);
            matmul_rows(ctx, nq, c, uv, 0, dv, o + t0 * nh * dv + h * dv, nh * dv);
        }
    });
    matmul(o, T, nh * dv, w.o, out, H, pool);
}

}  // namespace moe::cpu
