// SqliteDb: a thin RAII layer over one SQLite connection for the audit store: cached prepared
// statements with bound parameters, and SQLite errors as absl::Status messages that name the
// database file. No ORM, no SQL built from values. Layer: plugin/audit. Not thread-safe: the
// owner serialises every call (AuditStore holds its mutex).
#ifndef DERMA_PLUGIN_AUDIT_SQLITE_DB_H_
#define DERMA_PLUGIN_AUDIT_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace derma {

class SqliteDb;

// A prepared statement borrowed from SqliteDb's cache. Resets itself (ending any read it
// started) and clears its bindings when destroyed. Parameter and column indexes follow SQLite:
// parameters from 1, columns from 0.
class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  SqliteStatement& Bind(int index, int64_t value);
  SqliteStatement& Bind(int index, absl::string_view text);
  SqliteStatement& BindBlob(int index, absl::string_view bytes);

  // One step: true when a row is ready to read, false when the statement has finished.
  absl::StatusOr<bool> Step();
  // Steps until the statement finishes (for statements that return no rows).
  absl::Status Run();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;

 private:
  friend class SqliteDb;
  SqliteStatement(sqlite3_stmt* stmt, const SqliteDb* db) : stmt_(stmt), db_(db) {}

  sqlite3_stmt* stmt_;
  const SqliteDb* db_;
};

class SqliteDb {
 public:
  // Opens the database file read-write with extended result codes, creating it when missing
  // only if `create`. Fails FAILED_PRECONDITION naming `path` when the file cannot be opened or
  // created.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                        bool create = false);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }

  // The cached statement for `sql` (prepared on first use). One borrower per `sql` at a time.
  absl::StatusOr<SqliteStatement> Prepare(absl::string_view sql);
  // Runs `sql`, which may hold several statements and returns no rows (schema, BEGIN, …).
  absl::Status Exec(absl::string_view sql);
  // Runs a statement (a PRAGMA) whose first row has one column, and returns that column.
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // The status for SQLite result code `rc` from the last call on this connection:
  // "audit store <path>: <what>: <SQLite's message>". BUSY/LOCKED/IOERR are UNAVAILABLE,
  // FULL is RESOURCE_EXHAUSTED, CORRUPT/NOTADB are DATA_LOSS, CANTOPEN/READONLY/PERM are
  // FAILED_PRECONDITION, everything else INTERNAL.
  absl::Status Error(int rc, absl::string_view what) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };

  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  const std::string path_;
  absl::flat_hash_map<std::string, std::unique_ptr<sqlite3_stmt, Finalizer>> statements_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_SQLITE_DB_H_
