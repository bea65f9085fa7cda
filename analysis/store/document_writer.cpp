// One transaction per batch of documents, aggregates included; see document_writer.h.
#include "analysis/store/document_writer.h"

#include <cstring>
#include <map>

#include "analysis/store/packing.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace moe::analysis {

namespace {
const char* kDoing = "writing routing";
}  // namespace

DocumentWriter::DocumentWriter(sql::Db& db, RunInfo run)
    : db_(db),
      run_(std::move(run)),
      // No row when another process has deleted the run (moewb delete-run --force).
      max_seq_(db,
               "SELECT (SELECT coalesce(max(seq), 0) FROM run_documents WHERE run_id = ?1) FROM runs WHERE run_id = ?1",
               kDoing),
      // DO UPDATE (not DO NOTHING) so that RETURNING gives the id of an existing row too.
      insert_doc_(db,
                  "INSERT INTO documents (domain_id, split, name, text_hash, n_bytes) VALUES (?1, ?2, ?3, ?4, ?5) "
                  "ON CONFLICT (domain_id, split, name, text_hash) DO UPDATE SET n_bytes = excluded.n_bytes "
                  "RETURNING doc_id",
                  kDoing),
      has_run_doc_(db, "SELECT 1 FROM run_documents WHERE run_id = ?1 AND doc_id = ?2", kDoing),
      insert_run_doc_(db,
                      "INSERT INTO run_documents (run_id, doc_id, seq, n_tokens, truncated, token_ids) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      kDoing),
      insert_routing_(db,
                      "INSERT INTO routing (run_id, doc_id, layer, k, experts, gate_weights, entropy) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      kDoing),
      upsert_agg_(db,
                  "INSERT INTO aggregates (run_id, domain_id, layer, expert, count, rank0_count, gate_weight_sum) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, domain_id, layer, expert) DO UPDATE SET "
                  "count = count + excluded.count, rank0_count = rank0_count + excluded.rank0_count, "
                  "gate_weight_sum = gate_weight_sum + excluded.gate_weight_sum",
                  kDoing),
      upsert_tot_(db,
                  "INSERT INTO domain_totals (run_id, domain_id, layer, documents, tokens, entropy_sum) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, domain_id, layer) DO UPDATE SET "
                  "documents = documents + excluded.documents, tokens = tokens + excluded.tokens, "
                  "entropy_sum = entropy_sum + excluded.entropy_sum",
                  kDoing),
      update_run_(db, "UPDATE runs SET n_documents = n_documents + ?2, n_tokens = n_tokens + ?3 WHERE run_id = ?1",
                  kDoing) {
    for (const RunLayer& l : run_.layers) {
        offset_.push_back(n_cells_);
        n_cells_ += static_cast<size_t>(l.n_expert);
    }
}

void DocumentWriter::check(const DocumentRouting& d) const {
    const size_t T = d.token_ids.size();
    MOE_ASSERT(d.layers.size() == run_.layers.size());
    for (size_t i = 0; i < d.layers.size(); ++i) {
        const DocumentRouting::Layer& l = d.layers[i];
        const RunLayer& rl = run_.layers[i];
        MOE_ASSERT(l.layer == rl.layer && l.k == rl.k);
        const size_t K = static_cast<size_t>(l.k);
        MOE_ASSERT(l.experts.size() == T * K);
        MOE_ASSERT(l.gate_weights.size() == (run_.has_gate_weights() ? T * K : 0));
        MOE_ASSERT(l.entropy.size() == (run_.has_entropy ? T : 0));
        // Expert ids may come from outside (a serving engine's capture): an input error.
        for (int32_t e : l.experts)
            if (e < 0 || e >= rl.n_expert)
                throw_input_error(db_.path(), "document '" + d.name + "', layer " + std::to_string(l.layer) +
                                                  ": expert id " + std::to_string(e) + " outside 0.." +
                                                  std::to_string(rl.n_expert - 1));
    }
}

void DocumentWriter::write(std::span<const std::unique_ptr<DocumentRouting>> docs) {
    for (const auto& d : docs) check(*d);
    sql::Transaction tx(db_, kDoing);
    max_seq_.bind(1, run_.run_id);
    if (!max_seq_.step())
        throw_failure(db_.path(), "run " + std::to_string(run_.run_id) +
                                      " was deleted from this store while it was being written");
    int64_t seq = max_seq_.int64(0);
    max_seq_.reset();
    std::map<int64_t, DomainAcc> accs;
    int64_t tokens = 0;
    for (const auto& d : docs) {
        DomainAcc& acc = accs[d->domain_id];
        if (acc.count.empty()) {
            acc.tokens.assign(run_.layers.size(), 0);
            acc.entropy_sum.assign(run_.layers.size(), 0.0);
            acc.count.assign(n_cells_, 0);
            acc.rank0.assign(n_cells_, 0);
            acc.weight_sum.assign(n_cells_, 0.0);
        }
        write_one(*d, ++seq, acc);
        tokens += static_cast<int64_t>(d->token_ids.size());
    }
    flush_aggregates(accs, static_cast<int64_t>(docs.size()), tokens);
    tx.commit();
}

void DocumentWriter::write_one(const DocumentRouting& d, int64_t seq, DomainAcc& acc) {
    insert_doc_.bind(1, d.domain_id).bind(2, d.split).bind(3, d.name).bind(4, d.text_hash).bind(5, d.n_bytes);
    MOE_ASSERT(insert_doc_.step());
    const int64_t doc_id = insert_doc_.int64(0);
    insert_doc_.reset();
    has_run_doc_.bind(1, run_.run_id).bind(2, doc_id);
    const bool duplicate = has_run_doc_.step();
    has_run_doc_.reset();
    if (duplicate)
        throw_input_error(db_.path(), "run " + std::to_string(run_.run_id) + " already has document '" + d.name +
                                          "' (is another trace of the same run writing to this store?)");
    const size_t T = d.token_ids.size();
    packing::pack_i32(d.token_ids, ids_blob_);
    insert_run_doc_.bind(1, run_.run_id).bind(2, doc_id).bind(3, seq).bind(4, static_cast<int64_t>(T));
    insert_run_doc_.bind(5, int64_t{d.truncated}).bind_blob(6, ids_blob_.data(), ids_blob_.size());
    insert_run_doc_.run();
    acc.documents += 1;
    if (T == 0) return;
    sql::Stmt& ins = insert_routing_;
    for (size_t i = 0; i < d.layers.size(); ++i) {
        const DocumentRouting::Layer& l = d.layers[i];
        const size_t K = static_cast<size_t>(l.k);
        int64_t* count = acc.count.data() + offset_[i];
        int64_t* rank0 = acc.rank0.data() + offset_[i];
        double* wsum = acc.weight_sum.data() + offset_[i];
        if (run_.experts_format == "u8")
            packing::pack_u8(l.experts, experts_blob_);
        else
            packing::pack_u16(l.experts, experts_blob_);
        for (size_t t = 0; t < T; ++t) {
            const int32_t* e = l.experts.data() + t * K;
            rank0[e[0]] += 1;
            for (size_t r = 0; r < K; ++r) count[e[r]] += 1;
        }
        ins.bind(1, run_.run_id).bind(2, doc_id).bind(3, l.layer).bind(4, l.k);
        ins.bind_blob(5, experts_blob_.data(), experts_blob_.size());
        if (run_.has_gate_weights()) {
            packing::pack_f16(l.gate_weights, weights_blob_);
            // The aggregates sum what is stored (binary16), so they equal a recomputation from the rows.
            packed_weights_.resize(T * K);
            std::memcpy(packed_weights_.data(), weights_blob_.data(), weights_blob_.size());
            for (size_t j = 0; j < T * K; ++j)
                wsum[l.experts[j]] += static_cast<double>(f16_to_f32(packing::to_le(packed_weights_[j])));
            ins.bind_blob(6, weights_blob_.data(), weights_blob_.size());
        } else {
            ins.bind_null(6);
        }
        if (run_.has_entropy) {
            // As for the weights: the totals sum what is stored.
            double s = 0;
            if (run_.entropy_format == "f16") {
                packing::pack_f16(l.entropy, entropy_blob_);
                for (size_t t = 0; t < T; ++t) {
                    uint16_t h;
                    std::memcpy(&h, entropy_blob_.data() + 2 * t, 2);
                    s += static_cast<double>(f16_to_f32(packing::to_le(h)));
                }
            } else {
                packing::pack_f32(l.entropy, entropy_blob_);
                for (float h : l.entropy) s += static_cast<double>(h);
            }
            acc.entropy_sum[i] += s;
            ins.bind_blob(7, entropy_blob_.data(), entropy_blob_.size());
        } else {
            ins.bind_null(7);
        }
        ins.run();
        acc.tokens[i] += static_cast<int64_t>(T);
    }
}

void DocumentWriter::flush_aggregates(std::map<int64_t, DomainAcc>& accs, int64_t docs, int64_t tokens) {
    sql::Stmt& agg = upsert_agg_;
    sql::Stmt& tot = upsert_tot_;
    for (const auto& [domain_id, acc] : accs) {
        for (size_t i = 0; i < run_.layers.size(); ++i) {
            const RunLayer& rl = run_.layers[i];
            tot.bind(1, run_.run_id).bind(2, domain_id).bind(3, rl.layer).bind(4, acc.documents).bind(5, acc.tokens[i]);
            if (run_.has_entropy)
                tot.bind(6, acc.entropy_sum[i]);
            else
                tot.bind_null(6);
            tot.run();
            for (int64_t e = 0; e < rl.n_expert; ++e) {
                const size_t c = offset_[i] + static_cast<size_t>(e);
                if (acc.count[c] == 0) continue;
                agg.bind(1, run_.run_id).bind(2, domain_id).bind(3, rl.layer).bind(4, e);
                agg.bind(5, acc.count[c]).bind(6, acc.rank0[c]);
                if (run_.has_gate_weights())
                    agg.bind(7, acc.weight_sum[c]);
                else
                    agg.bind_null(7);
                agg.run();
            }
        }
    }
    update_run_.bind(1, run_.run_id).bind(2, docs).bind(3, tokens);
    update_run_.run();
}

}  // namespace moe::analysis
