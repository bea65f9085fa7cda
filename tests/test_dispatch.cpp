// Unit tests of engine/moe_dispatch.h, the MoE dispatch index arithmetic shared by the CPU
// and CUDA backends: expert offsets, stable gathered rows (with dropped slots), their
// inverse, and the tiles of a grouped GEMM — against direct counting on random batches; and
// the CUDA attention's tiling (engine/attention_tiles.h) against the positions it must cover;
// the experts spread over streams (engine/expert_streams.h); the decode stream kernel's tiles
// (engine/cuda/stream_plan.h).
#include <QtTest>

#include <algorithm>
#include <array>
#include <vector>

#include "engine/attention_tiles.h"
#include "engine/cuda/stream_plan.h"
#include "engine/expert_streams.h"
#include "engine/moe_dispatch.h"
#include "engine/wgmma_layout.h"
#include "tests/test_support.h"

namespace d = moe::dispatch;

class DispatchTest : public QObject {
    Q_OBJECT
private slots:
    void rows_are_a_stable_counting_sort() {
        test_support::Lcg rng{99};
        auto next = [&] { return rng.next(); };
        for (int trial = 0; trial < 300; ++trial) {
            const int64_t E = 1 + next() % 70, T = next() % 50, k = 1 + next() % 8;
            std::vector<int32_t> experts(static_cast<size_t>(T * k));
            for (auto& e : experts) e = static_cast<int32_t>(next() % static_cast<uint32_t>(E));
            std::vector<uint8_t> dropped(static_cast<size_t>(E), 0);
            const bool drop = trial % 2 == 1;
            for (auto& x : dropped) x = drop && next() % 3 == 0;
            const uint8_t* dr = drop ? dropped.data() : nullptr;

            std::vector<int64_t> offsets(static_cast<size_t>(E + 1)), cursor(static_cast<size_t>(E)),
                rows(static_cast<size_t>(T * k));
            d::expert_offsets(experts.data(), T * k, dr, E, offsets.data());
            d::slot_rows(experts.data(), T * k, dr, offsets.data(), E, cursor.data(), rows.data());
            // Offsets: prefix sums of the kept slots per expert.
            int64_t total = 0;
            for (int64_t e = 0; e < E; ++e) {
                QCOMPARE(offsets[size_t(e)], total);
                for (int64_t s = 0; s < T * k; ++s) total += experts[size_t(s)] == e && !(drop && dropped[size_t(e)]);
            }
            QCOMPARE(offsets[size_t(E)], total);
            // Rows: -1 exactly for dropped slots; the rest a permutation of [0, total), each in
            // its expert's range, increasing in slot order within an expert.
            std::vector<int> seen(static_cast<size_t>(total), 0);
            std::vector<int64_t> last(static_cast<size_t>(E), -1);
            for (int64_t s = 0; s < T * k; ++s) {
                const int32_t e = experts[size_t(s)];
                if (drop && dropped[size_t(e)]) {
                    QCOMPARE(rows[size_t(s)], int64_t(-1));
                    continue;
                }
                const int64_t r = rows[size_t(s)];
                QVERIFY(r >= offsets[size_t(e)] && r < offsets[size_t(e) + 1]);
                QVERIFY(r > last[size_t(e)]);
                last[size_t(e)] = r;
                ++seen[size_t(r)];
            }
            for (int c : seen) QCOMPARE(c, 1);
            // The inverse.
            std::vector<int64_t> row_slot(static_cast<size_t>(total), -1);
            d::row_slots(rows.data(), T * k, row_slot.data());
            for (int64_t r = 0; r < total; ++r) QCOMPARE(rows[size_t(row_slot[size_t(r)])], r);

            // Tiles: every row in exactly one tile of its expert, at most tile_m rows each.
            for (int64_t tile_m : {int64_t(1), int64_t(4), int64_t(16), int64_t(128)}) {
                std::vector<int64_t> tiles(static_cast<size_t>(E + 1));
                d::expert_tiles(offsets.data(), E, tile_m, tiles.data());
                std::vector<int> covered(static_cast<size_t>(total), 0);
                int64_t prev_expert = -1;
                for (int64_t i = 0; i < tiles[size_t(E)]; ++i) {
                    const d::Tile t = d::tile_at(offsets.data(), tiles.data(), E, tile_m, i);
                    QVERIFY(t.expert >= prev_expert && t.expert < E);
                    prev_expert = t.expert;
                    QVERIFY(t.rows >= 1 && t.rows <= tile_m);
                    QVERIFY(t.row0 >= offsets[size_t(t.expert)] && t.row0 + t.rows <= offsets[size_t(t.expert) + 1]);
                    for (int64_t r = t.row0; r < t.row0 + t.rows; ++r) ++covered[size_t(r)];
                }
                for (int c : covered) QCOMPARE(c, 1);
                // Within the bound a launch sized before the counts are known takes (from the
                // rows routed, and from the slots, dropped ones included).
                QVERIFY(tiles[size_t(E)] <= d::max_expert_tiles(total, E, tile_m));
                QVERIFY(tiles[size_t(E)] <= d::max_expert_tiles(T * k, E, tile_m));
                QCOMPARE(d::tile_at(offsets.data(), tiles.data(), E, tile_m, tiles[size_t(E)]).expert, int64_t(-1));
                QCOMPARE(d::tile_at(offsets.data(), tiles.data(), E, tile_m, -1).expert, int64_t(-1));
            }
        }
    }

    // The bound is reached: each expert one row past a whole number of tiles.
    void max_expert_tiles_is_reached() {
        for (int64_t tile_m : {int64_t(1), int64_t(16), int64_t(128)}) {
            std::vector<int64_t> offsets = {0};
            for (int64_t e = 0; e < 9; ++e) offsets.push_back(offsets.back() + tile_m * (e % 3) + 1);
            std::vector<int64_t> tiles(offsets.size());
            d::expert_tiles(offsets.data(), 9, tile_m, tiles.data());
            QCOMPARE(tiles.back(), d::max_expert_tiles(offsets.back(), 9, tile_m));
        }
    }

    void experts_spread_over_streams_most_rows_first() {
        test_support::Lcg rng{23};
        for (int trial = 0; trial < 500; ++trial) {
            const int64_t E = 1 + rng.next() % 80;
            const int streams = static_cast<int>(rng.next() % 6);  // 0 counts as one
            std::vector<int64_t> offsets = {0};
            for (int64_t e = 0; e < E; ++e) offsets.push_back(offsets.back() + (rng.next() % 3 == 0 ? 0 : rng.next() % 400));
            const auto spread = d::spread_experts(offsets.data(), E, streams);
            // Every expert with rows once, none without; the most rows first, ties in expert order.
            std::vector<int> seen(static_cast<size_t>(E), 0);
            std::vector<int64_t> load(static_cast<size_t>(std::max(streams, 1)), 0);
            int64_t largest = 0;
            for (size_t i = 0; i < spread.size(); ++i) {
                const auto [e, j] = spread[i];
                const int64_t rows = offsets[size_t(e) + 1] - offsets[size_t(e)];
                QVERIFY(rows > 0);
                QVERIFY(j >= 0 && j < std::max(streams, 1));
                ++seen[size_t(e)];
                if (i > 0) {
                    const auto [pe, pj] = spread[i - 1];
                    const int64_t prev = offsets[size_t(pe) + 1] - offsets[size_t(pe)];
                    QVERIFY(prev > rows || (prev == rows && pe < e));
                }
                // Each to a stream with the fewest rows so far.
                QCOMPARE(load[size_t(j)], *std::min_element(load.begin(), load.end()));
                load[size_t(j)] += rows;
                largest = std::max(largest, rows);
            }
            for (int64_t e = 0; e < E; ++e) QCOMPARE(seen[size_t(e)], offsets[size_t(e) + 1] > offsets[size_t(e)] ? 1 : 0);
            // Greedy over the largest first: no stream more than one expert's rows above another.
            QVERIFY(*std::max_element(load.begin(), load.end()) - *std::min_element(load.begin(), load.end()) <= largest);
        }
    }

    void batches_pad_each_expert_once() {
        test_support::Lcg rng{29};
        for (int trial = 0; trial < 500; ++trial) {
            const int64_t E = 1 + rng.next() % 80;
            const int64_t pad = std::array<int64_t, 4>{1, 8, 64, 128}[rng.next() % 4];
            std::vector<int64_t> offsets = {0};
            for (int64_t e = 0; e < E; ++e)
                offsets.push_back(offsets.back() + (rng.next() % 3 == 0 ? 0 : rng.next() % 400));
            const int64_t total = offsets.back();
            const d::BatchPlan plan = d::plan_batches(offsets.data(), E, pad);
            QCOMPARE(int64_t(plan.padded.size()), E + 1);
            QCOMPARE(plan.padded[0], int64_t(0));
            QVERIFY(plan.padded.back() <= d::padded_capacity(total, E, pad));
            // The bound is reached: n ≤ E rows, each an expert of its own, each padded whole.
            {
                const int64_t n = 1 + int64_t(rng.next() % uint64_t(E));
                std::vector<int64_t> ones(static_cast<size_t>(E) + 1);
                for (int64_t e = 0; e <= E; ++e) ones[size_t(e)] = std::min(e, n);
                QCOMPARE(d::plan_batches(ones.data(), E, pad).padded.back(), d::padded_capacity(n, E, pad));
            }
            // Each expert's segment: its rows rounded up to the pad, in exactly one batch of that count.
            std::vector<int> seen(static_cast<size_t>(E), 0);
            int64_t prev_work = -1, prev_rows = 0;
            for (const d::ExpertBatch& b : plan.batches) {
                QVERIFY(b.rows > 0 && b.rows % pad == 0);
                QVERIFY(!b.experts.empty() && std::is_sorted(b.experts.begin(), b.experts.end()));
                const int64_t work = b.rows * int64_t(b.experts.size());
                if (prev_work >= 0) QVERIFY(work < prev_work || (work == prev_work && b.rows > prev_rows));
                prev_work = work;
                prev_rows = b.rows;
                for (const int64_t e : b.experts) {
                    ++seen[size_t(e)];
                    QCOMPARE(plan.padded[size_t(e) + 1] - plan.padded[size_t(e)], b.rows);
                }
            }
            for (int64_t e = 0; e < E; ++e) {
                const int64_t rows = offsets[size_t(e) + 1] - offsets[size_t(e)];
                const int64_t seg = plan.padded[size_t(e) + 1] - plan.padded[size_t(e)];
                QVERIFY(seg >= rows && seg < rows + pad && seg % pad == 0);
                QCOMPARE(seen[size_t(e)], rows > 0 ? 1 : 0);
            }
            // Every gathered row at one padded row and back; the other padded rows are zeros.
            std::vector<int64_t> held(static_cast<size_t>(plan.padded.back()), -2);
            for (int64_t p = 0; p < plan.padded.back(); ++p)
                held[size_t(p)] = d::row_of_padded(offsets.data(), plan.padded.data(), E, p);
            int64_t zeros = 0;
            for (int64_t v : held) zeros += v == -1;
            QCOMPARE(zeros, plan.padded.back() - total);
            for (int64_t e = 0; e < E; ++e)
                for (int64_t r = offsets[size_t(e)]; r < offsets[size_t(e) + 1]; ++r)
                    QCOMPARE(held[size_t(d::padded_row(offsets.data(), plan.padded.data(), e, r))], r);
            // The stacked layout: each padded row's hi and lo parts at rows of their own, together
            // the rows 0 .. 2·padded[E] − 1 once each; expert e's hi parts make the first half of
            // its doubled segment, in padded order, its lo parts the second.
            std::vector<int> used(static_cast<size_t>(2 * plan.padded.back()), 0);
            for (int64_t p = 0; p < plan.padded.back(); ++p) {
                const int64_t e = d::segment_of(plan.padded.data(), E, p);
                const int64_t seg = plan.padded[size_t(e) + 1] - plan.padded[size_t(e)], i = p - plan.padded[size_t(e)];
                const int64_t hi = d::stacked_hi(plan.padded.data(), e, p), lo = d::stacked_lo(plan.padded.data(), e, p);
                QCOMPARE(hi, 2 * plan.padded[size_t(e)] + i);
                QCOMPARE(lo, 2 * plan.padded[size_t(e)] + seg + i);
                ++used[size_t(hi)];
                ++used[size_t(lo)];
            }
            QVERIFY(std::all_of(used.begin(), used.end(), [](int u) { return u == 1; }));
        }
    }

    void work_spreads_over_streams_largest_first() {
        const std::vector<int64_t> work = {5, 0, 9, 5, 1};
        const auto spread = d::spread_work(work, 2);
        const std::vector<std::pair<int64_t, int>> want = {{2, 0}, {0, 1}, {3, 1}, {4, 0}};
        QCOMPARE(spread, want);
        QVERIFY(d::spread_work({}, 3).empty());
    }

    // The Hopper experts' kernel's bookkeeping (engine/wgmma_layout.h): the swizzled tile is a
    // permutation of 16-byte pieces within each row, repeating every eight rows, and is the
    // PTX ISA's 128-byte swizzle written as address bits (bits 4-6 XOR bits 7-9); the
    // descriptor's fields decode to what the header says and step by 32 bytes per 16 columns; and
    // the accumulator's registers cover a 64 × N tile once over a warpgroup's 128 threads.
    void wgmma_layout_is_the_ptx_layout() {
        namespace w = moe::wgmma_layout;
        const uint32_t rows = 256;
        std::vector<int> seen(rows * 8, 0);
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < 8; ++c) {
                const uint32_t at = w::swizzled_offset(r, c);
                QCOMPARE(at % 16, 0u);
                QVERIFY(at >= r * 128 && at < r * 128 + 128);
                ++seen[at / 16];
                if (r >= 8) QCOMPARE(at, w::swizzled_offset(r - 8, c) + 1024);
                const uint32_t plain = r * 128 + c * 16;
                QCOMPARE(at, plain ^ (((plain >> 7) & 7u) << 4));
            }
        for (const int n : seen) QCOMPARE(n, 1);
        // A product's 16 columns kk of the tile start 32 · kk bytes on (the descriptor's start
        // address), and the hardware applies the swizzle to the address bits: element (r, k) of
        // that slice, at the plain address start + r · 128 + 2k, swizzled, is where the copies
        // put column 16 · kk + k of row r.
        for (uint32_t kk = 0; kk < 4; ++kk)
            for (uint32_t r = 0; r < 64; ++r)
                for (uint32_t k = 0; k < 16; ++k) {
                    const uint32_t tile = 8192, plain = tile + 32 * kk + r * 128 + 2 * k;
                    const uint32_t column = 16 * kk + k;
                    QCOMPARE(plain ^ (((plain >> 7) & 7u) << 4),
                             tile + w::swizzled_offset(r, column / 8) + 2 * (column % 8));
                }

        for (const uint32_t address : {0u, 1024u, 8192u + 32u, 0x2F400u, 0x3FC00u}) {
            const uint64_t d = w::descriptor(address);
            QCOMPARE(d & 0x3FFF, uint64_t((address & 0x3FFFF) >> 4));
            QCOMPARE((d >> 16) & 0x3FFF, uint64_t(1));
            QCOMPARE((d >> 32) & 0x3FFF, uint64_t(1024 / 16));
            QCOMPARE((d >> 49) & 7, uint64_t(0));
            QCOMPARE(d >> 62, uint64_t(1));
            QCOMPARE(d & ~((uint64_t(1) << 14) - 1) & ((uint64_t(1) << 16) - 1), uint64_t(0));   // bits 14-15 clear
            if (address + 96 < 0x40000) QCOMPARE(w::descriptor(address + 96) - d, uint64_t(6));  // 3 × 16 columns on
        }

        for (const int n : {64, 128, 256}) {
            std::vector<int> cover(static_cast<size_t>(64 * n), 0);
            for (int warp = 0; warp < 4; ++warp)
                for (int lane = 0; lane < 32; ++lane)
                    for (int i = 0; i < n / 2; ++i) {
                        const auto cell = w::accumulator_cell(warp, lane, i);
                        QVERIFY(cell.row >= 0 && cell.row < 64 && cell.col >= 0 && cell.col < n);
                        ++cover[static_cast<size_t>(cell.row * n + cell.col)];
                        // Registers 2j and 2j + 1 are neighbouring columns of one row (stored as a pair).
                        if (i % 2 == 1) {
                            const auto first = w::accumulator_cell(warp, lane, i - 1);
                            QCOMPARE(first.row, cell.row);
                            QCOMPARE(first.col + 1, cell.col);
                        }
                    }
            for (const int c : cover) QCOMPARE(c, 1);
        }
    }

    void attention_tiles_cover_exactly_the_visible_keys() {
        namespace a = moe::attention_tiles;
        test_support::Lcg rng{17};
        for (int trial = 0; trial < 2000; ++trial) {
            const int64_t T = 1 + rng.next() % 300, pos0 = rng.next() % 500, bq = 1 + rng.next() % 80,
                          bk = 1 + rng.next() % 70;
            for (int64_t q0 = 0; q0 < T; q0 += bq) {
                // The tile's last query sees keys 0 .. pos0 + its index: the tiles reach it, and
                // the last tile holds at least one key it sees.
                const int64_t last_seen = pos0 + std::min(q0 + bq, T) - 1;
                const int64_t tiles = a::key_tiles(q0, bq, T, pos0, bk);
                QVERIFY(tiles * bk > last_seen);
                QVERIFY((tiles - 1) * bk <= last_seen);
                // A group of 16 queries of the tile skips a key tile exactly when none of them
                // sees any of its keys (counted key by key).
                for (int64_t first = q0; first < q0 + bq; first += 16)
                    for (int64_t tile = 0; tile < tiles; ++tile) {
                        bool any = false;
                        for (int64_t q = first; q < std::min({first + 16, q0 + bq, T}); ++q)
                            for (int64_t key = tile * bk; key < (tile + 1) * bk && !any; ++key) any = key <= pos0 + q;
                        QCOMPARE(a::rows_see_tile(first, std::min<int64_t>(16, q0 + bq - first), T, pos0, tile * bk),
                                 any);
                    }
            }
        }
        for (int64_t visible = 1; visible <= 5000; visible += 1 + visible / 7)
            for (const int64_t splits : {1, 7, 64, 333}) {
                // The splits partition 0 .. visible-1 in order, none longer than split_length.
                int64_t next = 0;
                for (int64_t s = 0; s < splits; ++s) {
                    const a::Range r = a::split_range(visible, splits, s);
                    QVERIFY(r.begin <= r.end);
                    QVERIFY(r.end - r.begin <= a::split_length(visible, splits));
                    if (r.end > r.begin) {
                        QCOMPARE(r.begin, next);
                        next = r.end;
                    }
                }
                QCOMPARE(next, visible);
            }
    }

    // The decode stream kernel's tiles (engine/cuda/stream_plan.h): each part's items are taken
    // once, in order, by tiles that fit a slot and a warp a row; pairs stay within a head and
    // routed tiles within a slot; a stage's tiles split over the blocks b, b + nb, ….
    void stream_tiles_take_each_row_once() {
        namespace sp = moe::cuda::stream_plan;
        test_support::Lcg rng{5};
        for (int trial = 0; trial < 3000; ++trial) {
            sp::Part p;
            p.kind = static_cast<sp::Kind>(rng.next() % 5);
            p.row_bytes = 16 * (1 + static_cast<int64_t>(rng.next() % (trial % 3 == 0 ? 2200 : 300)));
            p.k = 1 + static_cast<int64_t>(rng.next() % 10);
            p.half = 1 + static_cast<int64_t>(rng.next() % 70);
            p.items = p.kind == sp::Kind::pairs ? p.half * static_cast<int64_t>(rng.next() % 20)
                                                : static_cast<int64_t>(rng.next() % 3000);
            const int64_t n = sp::per_tile(p);
            const int64_t rows_per_item = p.kind == sp::Kind::plain ? 1 : p.kind == sp::Kind::combine ? p.k : 2;
            if (!sp::fits(p)) {
                // Only a row too long for a slot, or more slots than warps, keeps a part out.
                QVERIFY(n < 1 || p.k * p.row_bytes > sp::kSlotBytes);
                continue;
            }
            QVERIFY(n * rows_per_item <= sp::kTileWarps);
            QVERIFY(n * rows_per_item * p.row_bytes <= sp::kSlotBytes);
            const int64_t runs = p.kind == sp::Kind::routed ? p.k : 1;
            std::vector<int64_t> next(static_cast<size_t>(runs), 0);
            for (int64_t t = 0; t < sp::tiles(p); ++t) {
                const sp::Span s = sp::span(p, t);
                QVERIFY(s.slot >= 0 && s.slot < runs);
                QVERIFY(s.count >= 1 && s.count <= n);
                QCOMPARE(s.first, next[static_cast<size_t>(s.slot)]);
                next[static_cast<size_t>(s.slot)] += s.count;
                if (p.kind == sp::Kind::pairs) QCOMPARE(s.first / p.half, (s.first + s.count - 1) / p.half);
            }
            for (const int64_t taken : next) QCOMPARE(taken, p.items);
            // The kernel's counts (prepare) give the same tiles.
            sp::Stage one;
            one.n = 1;
            one.part[0] = p;
            sp::prepare(one);
            QCOMPARE(sp::prepared_tiles(one), sp::tiles(p));
            for (int64_t t = 0; t < sp::tiles(p); ++t) {
                const sp::Span a = sp::span(p, t), b = sp::prepared_span(one.part[0], t);
                QCOMPARE(b.slot, a.slot);
                QCOMPARE(b.first, a.first);
                QCOMPARE(b.count, a.count);
            }
        }
        // A stage's parts one after another, and its tiles over the blocks.
        sp::Stage st;
        st.n = 3;
        st.part[0] = {sp::Kind::pairs, 1024, 4096, 64, 1};
        st.part[1] = {sp::Kind::pairs, 1024, 4096, 64, 1};
        st.part[2] = {sp::Kind::plain, 2048, 4096, 0, 1};
        QCOMPARE(sp::tiles(st), 256 + 256 + 256);
        int j = 0;
        int64_t local = 0;
        sp::locate(st, 600, j, local);
        QCOMPARE(j, 2);
        QCOMPARE(local, 600 - 512);
        // prepare()'s counts locate every tile as the counts from scratch do, parts without
        // tiles among them.
        for (const int64_t empty_items : {int64_t{0}, int64_t{1024}}) {
            st.part[1].items = empty_items;
            sp::prepare(st);
            QCOMPARE(sp::prepared_tiles(st), sp::tiles(st));
            for (int64_t t = 0; t < sp::tiles(st); ++t) {
                int pj = -1, sj = -1;
                int64_t pl = -1, sl = -1;
                sp::prepared_locate(st, t, pj, pl);
                sp::locate(st, t, sj, sl);
                QCOMPARE(pj, sj);
                QCOMPARE(pl, sl);
            }
        }
        for (const int64_t tiles : {0, 1, 131, 132, 133, 768, 2112})
            for (const int64_t nb : {1, 7, 132}) {
                int64_t sum = 0;
                for (int64_t b = 0; b < nb; ++b) sum += sp::block_tiles(tiles, b, nb);
                QCOMPARE(sum, tiles);
            }
    }

    // DeepSeekMoE 16B's decode layer as the stream kernel tiles it (BF16 weights, an f32
    // router; hidden 2048, 16 heads of 128, 64 experts of 1408 with 2 shared, top-6, a dense
    // first layer of 10944), counted by hand: every part fits, in the tiles a 32 KB slot allows.
    void stream_tiles_of_deepseek_moe_16b() {
        namespace sp = moe::cuda::stream_plan;
        using K = sp::Kind;
        struct Expect {
            sp::Part part;
            int64_t per_tile, tiles;
        };
        const Expect parts[] = {
            {{K::pairs, 1024, 2048 * 2, 64, 1}, 4, 256},    // q: 16 heads of 64 pairs, 4 KB rows
            {{K::pairs, 1024, 2048 * 2, 64, 1}, 4, 256},    // k
            {{K::plain, 2048, 2048 * 2, 0, 1}, 8, 256},     // v
            {{K::plain, 2048, 2048 * 2, 0, 1}, 8, 256},     // o
            {{K::plain, 64, 2048 * 4, 0, 1}, 4, 16},        // the router, f32
            {{K::gated, 2816, 2048 * 2, 0, 1}, 4, 704},     // the shared experts' gate and up
            {{K::plain, 2048, 2816 * 2, 0, 1}, 5, 410},     // their down (5.5 KB rows)
            {{K::routed, 1408, 2048 * 2, 0, 6}, 4, 2112},   // six experts' gate and up
            {{K::combine, 2048, 1408 * 2, 0, 6}, 1, 2048},  // their down rows, six pieces a tile
            {{K::gated, 10944, 2048 * 2, 0, 1}, 4, 2736},   // the dense layer's gate and up
            {{K::plain, 2048, 10944 * 2, 0, 1}, 1, 2048},   // its down (21 KB rows)
        };
        for (const Expect& e : parts) {
            QVERIFY(sp::fits(e.part));
            QCOMPARE(sp::per_tile(e.part), e.per_tile);
            QCOMPARE(sp::tiles(e.part), e.tiles);
        }
    }
};

QTEST_APPLESS_MAIN(DispatchTest)
#include "test_dispatch.moc"
