// AuditStore: the durable audit trail in one SQLite file: every command, state change, fault,
// lease, emergency stop and authentication failure as an AuditEvent, and every ended run (steps
// and dose ledger) so run history survives restarts. Writes return only once committed to disk
// (WAL, synchronous=FULL); retention is applied by Prune, which the host schedules.
// Layer: plugin/audit. Thread-safe: one connection behind a mutex, so calls are serialised and
// a write blocks its caller for an fsync (call it off device strands and gRPC handler threads).
#ifndef DERMA_PLUGIN_AUDIT_AUDIT_STORE_H_
#define DERMA_PLUGIN_AUDIT_AUDIT_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "derma/v1/run.pb.h"
#include "plugin/audit/audit_chain.h"
#include "plugin/audit/audit_event.h"
#include "plugin/audit/audit_schema.h"
#include "plugin/audit/sqlite_db.h"

namespace derma {

// How long records are kept. Each table (events, runs) is limited on its own.
struct RetentionOptions {
  // Records older than this are pruned (events by time, runs by end time, or start time for a
  // run recorded before it ended). InfiniteDuration keeps them forever.
  absl::Duration max_age = absl::InfiniteDuration();
  // Each table keeps at most this many of its newest records; 0 = no limit.
  int64_t max_rows = 0;
};

// Which events ListEvents returns. Empty strings and zero times match everything. (The `{}`
// initializers let callers write designated initializers without -Wmissing-field-initializers.)
struct AuditEventFilter {
  std::string device{};     // exact "devices/{id}"
  std::string principal{};  // exact principal
  int64_t since_us = 0;     // time_us ≥ since_us, when non-zero
  int64_t until_us = 0;     // time_us < until_us, when non-zero
};

struct AuditEventPage {
  std::vector<AuditEvent> events;  // newest first
  std::string next_page_token;     // empty on the last page
};

struct PruneResult {
  int64_t events_deleted = 0;
  int64_t runs_deleted = 0;
};

class AuditStore {
 public:
  // The schema version this build writes (kept in PRAGMA user_version).
  static constexpr int kSchemaVersion = kAuditSchemaVersion;
  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;
  // Rows deleted per transaction by Prune.
  static constexpr int kPruneBatch = 1000;

  // Opens the store at `path` and checks it (PRAGMA quick_check), migrating an older schema.
  // Only where no file exists is a new store created, atomically: built in a temporary file
  // beside it and linked into place, so a crash never leaves a half-made file. Every record is
  // chained (audit_chain.h); `checkpoint_key` (empty: none) seals the checkpoints pruning
  // writes. FAILED_PRECONDITION naming `path` when the file cannot be created or opened (e.g.
  // the directory is not writable), is empty (e.g. truncated to 0 bytes), is not a database or
  // is corrupt, belongs to another application, or has a schema newer than kSchemaVersion.
  static absl::StatusOr<std::unique_ptr<AuditStore>> Open(const std::string& path,
                                                          RetentionOptions retention = {},
                                                          std::string checkpoint_key = "");

  // Appends one event and returns its id once it is durable. INVALID_ARGUMENT (INVALID_FIELD)
  // for an unspecified kind; storage errors per SqliteDb::Error.
  absl::StatusOr<int64_t> Append(const AuditEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends every event in one transaction: all are durable, or none is written.
  absl::Status AppendBatch(const std::vector<AuditEvent>& events) ABSL_LOCKS_EXCLUDED(mu_);
  // Events matching `filter`, newest first. `page_size` 0 = kDefaultPageSize, at most
  // kMaxPageSize; `page_token` is a previous page's next_page_token (opaque) or empty.
  // INVALID_ARGUMENT (INVALID_FIELD) for a negative page size or a malformed token.
  absl::StatusOr<AuditEventPage> ListEvents(const AuditEventFilter& filter, int page_size,
                                            const std::string& page_token) ABSL_LOCKS_EXCLUDED(mu_);

  // Inserts the run, or replaces the stored one with the same name; returns once durable.
  // INVALID_ARGUMENT (INVALID_FIELD) without a name or device.
  absl::Status RecordRun(const v1::Run& run) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends `events` and upserts `runs` in one transaction (one fsync): all are durable, or
  // none is written. The audit trail's group commit.
  absl::Status Commit(const std::vector<AuditEvent>& events, const std::vector<v1::Run>& runs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every stored run that never ended (the service died while it was active) with
  // ENDED_EARLY / INTERRUPTED, and returns them. Its end_time is device time, like its
  // start_time: the last device time its record shows, start_time plus the output_on_s of its
  // last recorded ledger (start_time when nothing was recorded after the start). Called once at
  // start-up.
  absl::StatusOr<std::vector<v1::Run>> EndInterruptedRuns() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs of `device` ("devices/{id}", or "" for every device), newest start first (ties: the
  // one recorded first comes last), skipping `offset`, at most `limit`.
  absl::StatusOr<std::vector<v1::Run>> ListRuns(const std::string& device, int64_t offset,
                                                int64_t limit) ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND (RUN_NOT_FOUND) when no run of that name was recorded.
  absl::StatusOr<v1::Run> GetRun(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes events and runs beyond the retention options as of `now`, kPruneBatch rows per
  // transaction, releasing the store between batches so writers are never held up for long.
  absl::StatusOr<PruneResult> Prune(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Walks the hash chain (VerifyAuditChain with this store's checkpoint key) through a read
  // connection of its own, in one snapshot, without holding up writes. Reads the whole trail.
  absl::StatusOr<ChainReport> Verify(std::optional<std::string> expected_head);

  // The newest chained record: its id, hash, and the number of chained records ever written.
  struct ChainHead {
    int64_t id = 0;
    std::string hash = ChainGenesis();
    int64_t length = 0;
  };
  ChainHead head() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }
  const RetentionOptions& retention() const { return retention_; }

 private:
  AuditStore(std::unique_ptr<SqliteDb> db, RetentionOptions retention, std::string checkpoint_key);

  // Reads the newest record's id and hash into head_ (inside a write transaction, so another
  // connection's writes are chained onto too).
  absl::Status ReadHead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts `event` with the next id, chained onto head_; returns its id.
  absl::StatusOr<int64_t> InsertEvent(const AuditEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `events` and upserts `runs` in one transaction; the ids of the events.
  absl::StatusOr<std::vector<int64_t>> WriteTransaction(const std::vector<AuditEvent>& events,
                                                        const std::vector<v1::Run>& runs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Deletes the events with id ≤ `last_id`, kPruneBatch per transaction, moving the chain's
  // checkpoint to the last one deleted in the same transaction; returns rows deleted.
  absl::StatusOr<int64_t> PruneEventsThrough(int64_t last_id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<int64_t> PruneEventBatch(int64_t last_id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status UpsertRun(const v1::Run& run, const std::string& serialized)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one DELETE with `bounds` at ?1…?n and kPruneBatch at ?n+1 (its LIMIT); returns rows
  // deleted.
  absl::StatusOr<int64_t> DeleteBatch(absl::string_view sql, absl::Span<const int64_t> bounds)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Repeats DeleteBatch, taking the lock once per batch, until a batch deletes nothing.
  absl::StatusOr<int64_t> DeleteAll(absl::string_view sql, absl::Span<const int64_t> bounds)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Row-limit pruning: deletes what lies beyond the max_rows newest rows of each table.
  absl::Status PruneExcessRows(PruneResult& result) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  const RetentionOptions retention_;
  const std::string checkpoint_key_;
  mutable absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
  ChainHead head_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_AUDIT_STORE_H_
