// AuditStore's retention: Prune deletes in batches of kPruneBatch rows, one transaction each,
// taking the store's lock per batch only.
#include <optional>
#include <utility>

#include "plugin/audit/audit_store.h"

namespace derma {

absl::StatusOr<int64_t> AuditStore::DeleteBatch(absl::string_view sql,
                                                absl::Span<const int64_t> bounds) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SqliteStatement> remove = db_->Prepare(sql);
  if (!remove.ok()) return remove.status();
  int index = 1;
  for (int64_t bound : bounds) remove->Bind(index++, bound);
  remove->Bind(index, int64_t{kPruneBatch});
  if (absl::Status s = remove->Run(); !s.ok()) return s;
  return sqlite3_changes64(db_->handle());
}

absl::StatusOr<int64_t> AuditStore::DeleteAll(absl::string_view sql,
                                              absl::Span<const int64_t> bounds) {
  int64_t total = 0;
  while (true) {
    absl::StatusOr<int64_t> deleted = DeleteBatch(sql, bounds);
    if (!deleted.ok()) return deleted.status();
    if (*deleted == 0) return total;
    total += *deleted;
  }
}

absl::Status AuditStore::PruneExcessRows(PruneResult& result) {
  // The newest row beyond the limit is found once; everything at or before it goes. Rows
  // written meanwhile are newer, so they are never deleted by this pass.
  int64_t last_event = 0;                               // 0: within the limit
  std::optional<std::pair<int64_t, int64_t>> last_run;  // (start_us, rowid)
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SqliteStatement> event =
        db_->Prepare("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1");
    if (!event.ok()) return event.status();
    event->Bind(1, retention_.max_rows);
    absl::StatusOr<bool> row = event->Step();
    if (!row.ok()) return row.status();
    if (*row) last_event = event->Int(0);
    absl::StatusOr<SqliteStatement> run = db_->Prepare(
        "SELECT start_us, rowid FROM runs ORDER BY start_us DESC, rowid DESC LIMIT 1 OFFSET ?1");
    if (!run.ok()) return run.status();
    run->Bind(1, retention_.max_rows);
    row = run->Step();
    if (!row.ok()) return row.status();
    if (*row) last_run.emplace(run->Int(0), run->Int(1));
  }
  if (last_event > 0) {
    absl::StatusOr<int64_t> deleted =
        DeleteAll("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ?1 LIMIT ?2)",
                  {last_event});
    if (!deleted.ok()) return deleted.status();
    result.events_deleted += *deleted;
  }
  if (last_run.has_value()) {
    absl::StatusOr<int64_t> deleted = DeleteAll(
        "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs"
        " WHERE (start_us, rowid) <= (?1, ?2) LIMIT ?3)",
        {last_run->first, last_run->second});
    if (!deleted.ok()) return deleted.status();
    result.runs_deleted += *deleted;
  }
  return absl::OkStatus();
}

absl::StatusOr<PruneResult> AuditStore::Prune(absl::Time now) {
  PruneResult result;
  if (retention_.max_age != absl::InfiniteDuration()) {
    const int64_t cutoff_us = absl::ToUnixMicros(now - retention_.max_age);
    absl::StatusOr<int64_t> events = DeleteAll(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time_us < ?1 LIMIT ?2)",
        {cutoff_us});
    if (!events.ok()) return events.status();
    result.events_deleted += *events;
    absl::StatusOr<int64_t> runs = DeleteAll(
        "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs"
        " WHERE coalesce(end_us, start_us) < ?1 LIMIT ?2)",
        {cutoff_us});
    if (!runs.ok()) return runs.status();
    result.runs_deleted += *runs;
  }
  if (retention_.max_rows > 0) {
    if (absl::Status s = PruneExcessRows(result); !s.ok()) return s;
  }
  return result;
}

}  // namespace derma
