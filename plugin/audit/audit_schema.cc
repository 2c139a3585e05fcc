#include "plugin/audit/audit_schema.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace derma {
namespace {

// Version 1. A new file gets version 1 and then every migration step, as an old file does.
constexpr absl::string_view kSchemaV1 = R"sql(
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us INTEGER NOT NULL,  -- microseconds since the Unix epoch
  principal TEXT NOT NULL,
  device TEXT NOT NULL,      -- "devices/{id}" or ""
  kind TEXT NOT NULL,        -- AuditEventKind without prefix: COMMAND, STATE_CHANGE, ...
  method TEXT NOT NULL,
  summary TEXT NOT NULL,
  code INTEGER NOT NULL,     -- gRPC status code number
  reason TEXT NOT NULL,      -- ErrorReason without prefix, "" when OK
  detail TEXT NOT NULL);
CREATE INDEX events_by_time ON events (time_us);
CREATE INDEX events_by_device ON events (device, id);
CREATE INDEX events_by_principal ON events (principal, id);
CREATE TABLE runs (
  name TEXT PRIMARY KEY,     -- "devices/{id}/runs/{run}"
  device TEXT NOT NULL,
  start_us INTEGER NOT NULL, -- device time
  end_us INTEGER,            -- NULL for a run recorded before it ended
  state TEXT NOT NULL,       -- RunState without prefix
  end_reason TEXT NOT NULL,  -- RunEndReason without prefix
  run BLOB NOT NULL);        -- the serialized derma.v1.Run (steps, dose ledger)
CREATE INDEX runs_by_start ON runs (start_us);
CREATE INDEX runs_by_device ON runs (device, start_us);
CREATE INDEX runs_by_age ON runs (coalesce(end_us, start_us));
)sql";

// Version 1 → 2: the hash chain and coalesced refusals. Records already there keep a NULL
// hash: they were written before the chain and are reported as unchained.
constexpr absl::string_view kMigrateV1ToV2 = R"sql(
ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN peer_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN hash BLOB;  -- SHA-256 chain link; NULL: unchained (schema 1)
CREATE TABLE chain_checkpoint (
  one INTEGER PRIMARY KEY CHECK (one = 1),  -- at most one row
  through_id INTEGER NOT NULL,      -- the last pruned record
  through_hash BLOB NOT NULL,       -- its hash
  chained_pruned INTEGER NOT NULL,  -- chained records pruned so far
  keyed INTEGER NOT NULL,           -- 1: seal is HMAC-SHA-256 under the key file
  seal BLOB NOT NULL);
)sql";

absl::Status Refuse(const SqliteDb& db, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat("audit store ", db.path(), ": ", why));
}

// Any storage error while opening means the file cannot be used as it is.
absl::Status AsPrecondition(absl::Status status) {
  if (status.ok() || status.code() == absl::StatusCode::kFailedPrecondition) return status;
  return absl::FailedPreconditionError(status.message());
}

absl::Status QuickCheck(SqliteDb& db) {
  absl::StatusOr<SqliteStatement> check = db.Prepare("PRAGMA quick_check");
  std::vector<std::string> problems;
  absl::StatusOr<bool> row = check.ok() ? check->Step() : check.status();
  for (; row.ok() && *row; row = check->Step()) {
    if (std::string line = check->Text(0); line != "ok" && problems.size() < 5) {
      problems.push_back(std::move(line));
    }
  }
  if (!row.ok()) {
    return Refuse(db,
                  absl::StrCat("cannot be read as an audit store (", sqlite3_errmsg(db.handle()),
                               "); move it aside to start a new store"));
  }
  if (problems.empty()) return absl::OkStatus();
  // quick_check can list thousands of damaged cells; the start says enough.
  std::string found = absl::StrJoin(problems, "; ");
  absl::StrReplaceAll({{"\n", "; "}}, &found);
  if (found.size() > 300) found = absl::StrCat(found.substr(0, 300), "…");
  return Refuse(db, absl::StrCat("the database is corrupt (PRAGMA quick_check: ", found,
                                 "); move it aside to start a new store"));
}

// An existing file without a schema (e.g. truncated to 0 bytes) lost its history: starting an
// empty trail over it would hide that.
absl::Status RefuseEmpty(const SqliteDb& db) {
  return Refuse(db,
                "the file exists but holds no audit trail (empty or truncated); its history is "
                "lost or elsewhere: restore it from a backup, or remove the file to start a new "
                "trail");
}

absl::StatusOr<int64_t> QueryInt(SqliteDb& db, absl::string_view sql) {
  absl::StatusOr<std::string> text = db.QueryText(sql);
  if (!text.ok()) return text.status();
  int64_t value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return Refuse(db, absl::StrCat(sql, " returned '", *text, "'"));
  }
  return value;
}

// Runs inside BEGIN IMMEDIATE, so two processes opening a new file create the schema once.
absl::Status CreateOrCheck(SqliteDb& db, bool new_file) {
  constexpr int version = kAuditSchemaVersion;
  absl::StatusOr<int64_t> application_id = QueryInt(db, "PRAGMA application_id");
  if (!application_id.ok()) return application_id.status();
  absl::StatusOr<int64_t> found = QueryInt(db, "PRAGMA user_version");
  if (!found.ok()) return found.status();
  absl::StatusOr<int64_t> objects = QueryInt(db, "SELECT count(*) FROM sqlite_schema");
  if (!objects.ok()) return objects.status();
  if (*application_id != kAuditApplicationId && (*application_id != 0 || *objects > 0)) {
    return Refuse(db, "the file is another application's database, not a derma audit store");
  }
  if (*found > version) {
    return Refuse(db, absl::StrCat("schema version ", *found, " is newer than this build's (",
                                   version, "); use a newer dermad or another file"));
  }
  if (*found == version) return absl::OkStatus();
  if (*found == 0) {
    if (!new_file) return RefuseEmpty(db);
    if (absl::Status s = db.Exec(kSchemaV1); !s.ok()) return s;
  }
  if (absl::Status s = db.Exec(kMigrateV1ToV2); !s.ok()) return s;
  return db.Exec(absl::StrCat("PRAGMA application_id = ", kAuditApplicationId,
                              "; PRAGMA user_version = ", version));
}

}  // namespace

absl::Status PrepareAuditSchema(SqliteDb& db, bool new_file) {
  // Waits for another connection's write (e.g. a second process) instead of failing at once,
  // but not for long: commands wait for their records, so a file another process keeps
  // locked must turn into AUDIT_UNAVAILABLE quickly rather than into client deadlines.
  sqlite3_busy_timeout(db.handle(), 1000);
  if (absl::Status s = QuickCheck(db); !s.ok()) return s;
  if (!new_file) {  // before WAL mode writes a header into an empty file
    absl::StatusOr<int64_t> objects = QueryInt(db, "SELECT count(*) FROM sqlite_schema");
    if (!objects.ok()) return AsPrecondition(objects.status());
    if (*objects == 0) return RefuseEmpty(db);
  }
  absl::StatusOr<std::string> mode = db.QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return AsPrecondition(mode.status());
  if (*mode != "wal") {
    return Refuse(db, absl::StrCat("cannot use write-ahead logging (journal_mode is ", *mode,
                                   "; WAL needs a local file system)"));
  }
  // FULL: in WAL mode every commit fsyncs the log, so a returned write survives a power cut.
  if (absl::Status s = db.Exec("PRAGMA synchronous = FULL"); !s.ok()) return AsPrecondition(s);
  if (absl::Status s = db.Exec("BEGIN IMMEDIATE"); !s.ok()) return AsPrecondition(s);
  absl::Status status = CreateOrCheck(db, new_file);
  if (status.ok()) status = db.Exec("COMMIT");
  if (!status.ok()) db.Exec("ROLLBACK").IgnoreError();  // the first error is the one to report
  return AsPrecondition(status);
}

AuditEvent AuditEventFromRow(const SqliteStatement& row) {
  AuditEvent event;
  event.id = row.Int(0);
  event.time_us = row.Int(1);
  event.principal = row.Text(2);
  event.device = row.Text(3);
  event.kind = AuditKindFromName(row.Text(4));
  event.method = row.Text(5);
  event.summary = row.Text(6);
  event.code = static_cast<int>(row.Int(7));
  event.reason = row.Text(8);
  event.detail = row.Text(9);
  event.count = row.Int(10);
  event.peer_ip = row.Text(11);
  return event;
}

}  // namespace derma
