// The writer thread and its bounded queue; see trace_writer.h.
#include "analysis/trace_writer.h"

#include <chrono>

#include "analysis/store/document_writer.h"

namespace moe::analysis {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t decisions_of(const DocumentRouting& d) {
    int64_t n = 0;
    for (const auto& l : d.layers) n += static_cast<int64_t>(l.experts.size());
    return n;
}
}  // namespace

TraceWriter::TraceWriter(const RoutingStore& store, int64_t run_id, const TraceWriterOptions& opt) : opt_(opt) {
    StoreOptions so = store.options();
    so.create = false;
    so.read_only = false;
    store_ = std::make_unique<RoutingStore>(RoutingStore::open(store.path(), so));
    run_ = store_->run(run_id);
    thread_ = std::thread([this] { loop(); });
}

TraceWriter::~TraceWriter() {
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
    }
    work_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void TraceWriter::rethrow_if_failed() {
    if (error_) throw Error(error_->kind(), error_->what());
}

void TraceWriter::submit(std::unique_ptr<DocumentRouting> doc) {
    const size_t bytes = doc->bytes();
    std::unique_lock lock(mutex_);
    rethrow_if_failed();
    MOE_ASSERT(!closing_);
    if (!queue_.empty() && queued_bytes_ + bytes > opt_.queue_bytes) {
        const auto t0 = Clock::now();
        room_.wait(lock, [&] { return error_ || queue_.empty() || queued_bytes_ + bytes <= opt_.queue_bytes; });
        stats_.producer_wait_s += seconds_since(t0);
        rethrow_if_failed();
    }
    queued_bytes_ += bytes;
    queue_.push_back(std::move(doc));
    lock.unlock();
    work_.notify_one();
}

void TraceWriter::finish() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return error_ || (queue_.empty() && !busy_); });
    rethrow_if_failed();
}

TraceWriterStats TraceWriter::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void TraceWriter::loop() {
    std::optional<DocumentWriter> writer;
    std::vector<std::unique_ptr<DocumentRouting>> batch;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            work_.wait(lock, [&] { return closing_ || !queue_.empty(); });
            if (queue_.empty()) break;  // closing and drained
            // Take what is queued, up to one transaction's worth: while a transaction is being
            // written the producer fills the queue again, so batches grow when disk is the limit.
            int64_t decisions = 0;
            while (!queue_.empty() && (batch.empty() || decisions < opt_.batch_decisions)) {
                decisions += decisions_of(*queue_.front());
                queued_bytes_ -= queue_.front()->bytes();
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            busy_ = true;
        }
        room_.notify_all();
        const auto t0 = Clock::now();
        std::optional<Error> failed;
        try {
            if (!writer) writer.emplace(store_->connection(), run_);
            writer->write(batch);
        } catch (const Error& e) {
            failed = e;
        } catch (const std::exception& e) {
            failed = Error(ErrorKind::failure, store_->path() + ": writing routing: " + e.what());
        }
        std::lock_guard lock(mutex_);
        stats_.write_s += seconds_since(t0);
        busy_ = false;
        if (failed) {
            error_ = failed;
            queue_.clear();
            queued_bytes_ = 0;
            room_.notify_all();
            idle_.notify_all();
            return;
        }
        stats_.transactions += 1;
        for (const auto& d : batch) {
            stats_.documents += 1;
            stats_.tokens += static_cast<int64_t>(d->token_ids.size());
            stats_.decisions += decisions_of(*d);
        }
        batch.clear();
        if (queue_.empty()) idle_.notify_all();
    }
    std::lock_guard lock(mutex_);
    idle_.notify_all();
}

}  // namespace moe::analysis
