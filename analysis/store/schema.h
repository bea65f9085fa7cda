// The routing store's schema as an ordered list of forward migrations: migration N takes a
// store from PRAGMA user_version N-1 to N. A fresh store runs them all; an older store runs
// the ones it lacks, in one transaction, when opened for writing. A store whose
// user_version is newer than the last migration is refused (a newer build made it).
// The tables are described in docs/store.md. Private to analysis/.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "analysis/store/sqlite_db.h"

namespace moe::analysis::schema {

// PRAGMA application_id of a routing store: the bytes "MOEW".
constexpr int64_t kApplicationId = 0x4D4F4557;

struct Migration {
    int64_t version;  // user_version after this migration
    const char* sql;
};

// The store's migrations, versions 1, 2, ... in order.
std::span<const Migration> migrations();
int64_t latest_version();

// What a file holds, read from its header without writing.
struct Header {
    int64_t application_id = 0;
    int64_t user_version = 0;
    int64_t n_schema_objects = 0;  // rows of sqlite_master
};
Header read_header(sql::Db& db);

// Throws moe::Error(input) unless `h` is an empty database or a routing store of a schema
// version up to `latest`. Writes nothing.
void check_header(const sql::Db& db, const Header& h, int64_t latest);

// Checks that `db` is a routing store this build can read (or an empty database), and when
// `writable` brings it up to the last of `list` in one transaction. Throws moe::Error(input)
// for a file that is not a store, a store of a newer schema, or an old store opened read-only.
void check_and_migrate(sql::Db& db, bool writable, std::span<const Migration> list);

// Ids a notebook may cite (runs, ablations) are never given twice: the highest id deleted from
// such a table is kept in `meta` under `key` (the larger of it and what is there), and new
// rows take 1 + the larger of the table's highest id and that one.
void remember_deleted_id(sql::Db& db, const char* key, int64_t highest, const char* doing);
// That id as an SQL expression for an INSERT into `table`, its id in `column`.
std::string next_id_sql(const char* table, const char* column, const char* key);

}  // namespace moe::analysis::schema
