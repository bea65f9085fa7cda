// SQLite connection, statements and transactions with errors in the store's words; see
// sqlite_db.h.
#include "analysis/store/sqlite_db.h"

#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "engine/error.h"

namespace moe::analysis::sql {

Db::Db(const std::string& path, int flags, int busy_timeout_ms) : path_(path), busy_timeout_ms_(busy_timeout_ms) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        if ((rc & 0xff) == SQLITE_CANTOPEN) throw_input_error(path, "cannot open the routing store (" + msg + ")");
        throw_failure(path, "cannot open the routing store (" + msg + ")");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Db::~Db() {
    sqlite3_close_v2(db_);
}

bool Db::read_only() const {
    return sqlite3_db_readonly(db_, "main") == 1;
}

void Db::fail(int rc, const std::string& doing) const {
    const std::string detail = sqlite3_errmsg(db_);
    switch (rc & 0xff) {
        case SQLITE_NOTADB:
            throw_input_error(path_, "not a MoE Workbench routing store: the file is not an SQLite database");
        case SQLITE_CORRUPT:
            throw_input_error(path_, "the routing store is damaged (SQLite: " + detail + ") while " + doing);
        case SQLITE_READONLY:
            throw_input_error(path_,
                              "the routing store is read-only (file or directory permissions, or a "
                              "read-only file system), and " +
                                  doing + " needs to write to it");
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw_failure(path_, "the routing store is locked by another process (waited " +
                                     std::to_string(busy_timeout_ms_) + " ms while " + doing +
                                     "); try again when that process has finished");
        case SQLITE_FULL:
            throw_failure(path_, "disk full (or the store's size limit reached) while " + doing +
                                     "; that transaction was rolled back, nothing of it was written");
        case SQLITE_IOERR:
            throw_failure(path_, "I/O error while " + doing + " (SQLite: " + detail + ")");
        case SQLITE_CANTOPEN:
            throw_input_error(path_, "cannot open the routing store while " + doing + " (SQLite: " + detail + ")");
        default:
            throw_failure(path_, "SQLite error while " + doing + ": " + detail + " (code " + std::to_string(rc) + ")");
    }
}

void Db::exec(const std::string& sql, const char* doing) {
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, doing);
}

void Db::exec_waiting(const std::string& sql, const char* doing) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
    for (;;) {
        const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return;
        const int base = rc & 0xff;
        if ((base != SQLITE_BUSY && base != SQLITE_LOCKED) || std::chrono::steady_clock::now() >= until) fail(rc, doing);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

int64_t Db::pragma_int(const char* name) {
    Stmt s(*this, std::string("PRAGMA ") + name, "reading the store header");
    if (!s.step()) return 0;
    return s.int64(0);
}

int64_t Db::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(db_);
}

int64_t Db::changes() const {
    return sqlite3_changes64(db_);
}

Stmt::Stmt(Db& db, std::string_view sql, const char* doing) : db_(db), doing_(doing) {
    const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                      &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, doing);
}

Stmt::~Stmt() {
    sqlite3_finalize(stmt_);
}

Stmt& Stmt::bind(int i, int64_t v) {
    const int rc = sqlite3_bind_int64(stmt_, i, v);
    if (rc != SQLITE_OK) db_.fail(rc, doing_);
    return *this;
}

Stmt& Stmt::bind(int i, double v) {
    const int rc = sqlite3_bind_double(stmt_, i, v);
    if (rc != SQLITE_OK) db_.fail(rc, doing_);
    return *this;
}

Stmt& Stmt::bind(int i, std::string_view text) {
    const int rc = sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) db_.fail(rc, doing_);
    return *this;
}

Stmt& Stmt::bind_blob(int i, const void* data, size_t bytes) {
    // SQLITE_STATIC: callers keep the bytes alive until the statement has run.
    const int rc = data || bytes == 0 ? sqlite3_bind_blob64(stmt_, i, bytes ? data : "", bytes, SQLITE_STATIC)
                                      : sqlite3_bind_null(stmt_, i);
    if (rc != SQLITE_OK) db_.fail(rc, doing_);
    return *this;
}

Stmt& Stmt::bind_null(int i) {
    const int rc = sqlite3_bind_null(stmt_, i);
    if (rc != SQLITE_OK) db_.fail(rc, doing_);
    return *this;
}

bool Stmt::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    sqlite3_reset(stmt_);
    db_.fail(rc, doing_);
}

void Stmt::run() {
    while (step()) {
    }
    reset();
}

void Stmt::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Stmt::is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
int64_t Stmt::int64(int col) const {
    return sqlite3_column_int64(stmt_, col);
}
double Stmt::real(int col) const {
    return sqlite3_column_double(stmt_, col);
}

std::string Stmt::text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

std::span<const uint8_t> Stmt::blob(int col) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
    return {p, p ? static_cast<size_t>(sqlite3_column_bytes(stmt_, col)) : 0};
}

ReadSnapshot::ReadSnapshot(Db& db, const char* doing) : db_(db) {
    if (!sqlite3_get_autocommit(db.get())) return;  // inside the caller's transaction
    db.exec("BEGIN DEFERRED", doing);
    open_ = true;
}

ReadSnapshot::~ReadSnapshot() {
    if (open_ && !sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

Transaction::Transaction(Db& db, const char* doing) : db_(db), doing_(doing) {
    db_.exec("BEGIN IMMEDIATE", doing);
    open_ = true;
}

Transaction::~Transaction() {
    // A failed statement (disk full, I/O error) may already have rolled the transaction back.
    if (open_ && !sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    db_.exec("COMMIT", doing_);
    open_ = false;
}

}  // namespace moe::analysis::sql
