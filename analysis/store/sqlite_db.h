// A thin RAII layer over the SQLite C API for the routing store: a connection, prepared
// statements and transactions, with every SQLite error turned into a moe::Error that names
// the store file, what was being done, and a plain reading of the cause (not a store, newer
// or damaged file, read-only, locked by another process, disk full). Private to analysis/.
// Not thread-safe: one connection belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace moe::analysis::sql {

class Db {
public:
    // `flags` are sqlite3_open_v2 flags; `busy_timeout_ms` is how long a write waits for
    // another process's lock before failing.
    Db(const std::string& path, int flags, int busy_timeout_ms);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    sqlite3* get() const { return db_; }
    const std::string& path() const { return path_; }
    int busy_timeout_ms() const { return busy_timeout_ms_; }
    bool read_only() const;

    void exec(const std::string& sql, const char* doing);
    // exec, tried again while another connection holds the lock, until the busy timeout has
    // passed: for a statement SQLite refuses at once rather than waiting (one that holds a
    // read lock and needs the write lock, such as a journal-mode switch, would deadlock).
    void exec_waiting(const std::string& sql, const char* doing);
    int64_t pragma_int(const char* name);  // "PRAGMA name" -> first column of its row
    int64_t last_insert_rowid() const;
    int64_t changes() const;  // rows the last INSERT, UPDATE or DELETE touched

    // Throws the moe::Error for SQLite result code `rc` (extended), naming `doing`.
    [[noreturn]] void fail(int rc, const std::string& doing) const;

private:
    sqlite3* db_ = nullptr;
    std::string path_;
    int busy_timeout_ms_ = 0;
};

class Stmt {
public:
    Stmt(Db& db, std::string_view sql, const char* doing);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    // Parameters are 1-based, as in SQL's ?1, ?2, ...
    Stmt& bind(int i, int64_t v);
    Stmt& bind(int i, double v);
    Stmt& bind(int i, std::string_view text);
    Stmt& bind_blob(int i, const void* data, size_t bytes);
    Stmt& bind_null(int i);

    bool step();   // true: a row is ready; false: done
    void run();    // steps a statement that returns no rows, then resets it
    void reset();  // ready to run again; bindings are cleared

    bool is_null(int col) const;
    int64_t int64(int col) const;
    double real(int col) const;
    std::string text(int col) const;
    std::span<const uint8_t> blob(int col) const;  // valid until the next step/reset

private:
    Db& db_;
    sqlite3_stmt* stmt_ = nullptr;
    const char* doing_;
};

// BEGIN IMMEDIATE on construction (takes the write lock now, so a locked store fails here
// rather than half way), ROLLBACK on destruction unless commit() was called.
class Transaction {
public:
    Transaction(Db& db, const char* doing);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Db& db_;
    const char* doing_;
    bool open_ = false;
};

// Reads that must see one state of the file (another process may commit between two
// statements otherwise): one read transaction, unless the caller's transaction is open.
class ReadSnapshot {
public:
    ReadSnapshot(Db& db, const char* doing);
    ~ReadSnapshot();
    ReadSnapshot(const ReadSnapshot&) = delete;
    ReadSnapshot& operator=(const ReadSnapshot&) = delete;

private:
    Db& db_;
    bool open_ = false;
};

}  // namespace moe::analysis::sql
