// SqliteWriteLock: holds SQLite's write lock on a database file from a second connection, as
// another process could, so tests can make the audit trail's commits fail. Header-only; used
// by tests/audit and tests/integration.
#ifndef DERMA_TESTS_AUDIT_SQLITE_WRITE_LOCK_H_
#define DERMA_TESTS_AUDIT_SQLITE_WRITE_LOCK_H_

#include <sqlite3.h>

#include <string>

#include "gtest/gtest.h"

namespace derma::testing {

class SqliteWriteLock {
 public:
  explicit SqliteWriteLock(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ~SqliteWriteLock() { Release(); }
  SqliteWriteLock(const SqliteWriteLock&) = delete;
  SqliteWriteLock& operator=(const SqliteWriteLock&) = delete;

  void Release() {
    if (db_ == nullptr) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace derma::testing

#endif  // DERMA_TESTS_AUDIT_SQLITE_WRITE_LOCK_H_
