// TraceWriter: the writer thread between the forward pass and the routing store. The
// producer (the trace runner, or a capture from a serving engine) submits finished
// documents into a bounded queue and goes on; the writer thread, with its own connection,
// drains the queue in batched transactions (analysis/store/document_writer). The producer
// waits only when the queue holds more than queue_bytes. An error on the writer thread
// (disk full, locked store) stops it and is rethrown to the producer by the next submit()
// or finish(): nothing is thrown across the thread boundary.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "analysis/routing_store.h"
#include "engine/error.h"

namespace moe::analysis {

struct TraceWriterOptions {
    size_t queue_bytes = size_t{256} << 20;      // the producer waits while more than this is queued
    int64_t batch_decisions = int64_t{8} << 20;  // routing decisions per transaction at most
};

struct TraceWriterStats {
    int64_t documents = 0;
    int64_t tokens = 0;
    int64_t decisions = 0;  // token × layer × rank
    int64_t transactions = 0;
    double producer_wait_s = 0;  // time submit() spent waiting for room in the queue
    double write_s = 0;          // time the writer thread spent in transactions
};

class TraceWriter {
public:
    // Opens its own connection to `store`'s file (same options) for run `run_id`.
    TraceWriter(const RoutingStore& store, int64_t run_id, const TraceWriterOptions& opt = {});
    ~TraceWriter();  // writes what is queued, then stops; never throws
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;

    void submit(std::unique_ptr<DocumentRouting> doc);
    void finish();  // waits until every submitted document is committed; rethrows a writer error
    TraceWriterStats stats() const;

private:
    void loop();
    void rethrow_if_failed();  // with mutex_ held

    std::unique_ptr<RoutingStore> store_;  // the writer thread's connection
    RunInfo run_;
    TraceWriterOptions opt_;
    mutable std::mutex mutex_;
    std::condition_variable room_, work_, idle_;
    std::deque<std::unique_ptr<DocumentRouting>> queue_;
    size_t queued_bytes_ = 0;
    bool busy_ = false;  // the writer holds a batch taken from the queue
    bool closing_ = false;
    std::optional<Error> error_;
    TraceWriterStats stats_;
    std::thread thread_;
};

}  // namespace moe::analysis
