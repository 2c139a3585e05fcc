// AuditStore's retention: Prune deletes in batches of kPruneBatch rows, one transaction each,
// taking the store's lock per batch only. Events go oldest first (a prefix of the chain), and
// each batch moves the chain's checkpoint to its last record in the same transaction.
#include <optional>
#include <string>
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

absl::StatusOr<int64_t> AuditStore::PruneEventBatch(int64_t last_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  ChainCheckpoint checkpoint;
  int64_t deleted = 0;
  auto batch = [&]() -> absl::Status {
    absl::StatusOr<SqliteStatement> old =
        db_->Prepare("SELECT id, hash FROM events WHERE id <= ?1 ORDER BY id LIMIT ?2");
    if (!old.ok()) return old.status();
    old->Bind(1, last_id).Bind(2, int64_t{kPruneBatch});
    int64_t chained = 0;
    for (absl::StatusOr<bool> row = old->Step();; row = old->Step()) {
      if (!row.ok()) return row.status();
      if (!*row) break;
      ++deleted;
      checkpoint.through_id = old->Int(0);
      checkpoint.through_hash = old->IsNull(1) ? ChainGenesis() : old->Blob(1);
      if (!old->IsNull(1)) ++chained;
    }
    if (deleted == 0) return absl::OkStatus();
    absl::StatusOr<std::string> before =
        db_->QueryText("SELECT coalesce((SELECT chained_pruned FROM chain_checkpoint), 0)");
    if (!before.ok()) return before.status();
    checkpoint.chained_pruned = std::stoll(*before) + chained;
    checkpoint.keyed = !checkpoint_key_.empty();
    checkpoint.seal = SealCheckpoint(checkpoint, checkpoint_key_);
    absl::StatusOr<SqliteStatement> remove = db_->Prepare("DELETE FROM events WHERE id <= ?1");
    if (!remove.ok()) return remove.status();
    remove->Bind(1, checkpoint.through_id);
    if (absl::Status s = remove->Run(); !s.ok()) return s;
    absl::StatusOr<SqliteStatement> save = db_->Prepare(
        "INSERT OR REPLACE INTO chain_checkpoint (one, through_id, through_hash, chained_pruned,"
        " keyed, seal) VALUES (1, ?1, ?2, ?3, ?4, ?5)");
    if (!save.ok()) return save.status();
    save->Bind(1, checkpoint.through_id)
        .BindBlob(2, checkpoint.through_hash)
        .Bind(3, checkpoint.chained_pruned)
        .Bind(4, int64_t{checkpoint.keyed})
        .BindBlob(5, checkpoint.seal);
    return save->Run();
  };
  absl::Status status = batch();
  if (status.ok()) status = db_->Exec("COMMIT");
  if (!status.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();  // the first error is the one to report
    return status;
  }
  return deleted;
}

absl::StatusOr<int64_t> AuditStore::PruneEventsThrough(int64_t last_id) {
  int64_t total = 0;
  while (true) {
    absl::StatusOr<int64_t> deleted = PruneEventBatch(last_id);
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
    absl::StatusOr<int64_t> deleted = PruneEventsThrough(last_event);
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
    // The prefix through the newest record older than the cutoff (records are in time order
    // but for wall-clock steps back, whose few records then go a little early).
    int64_t last_old = 0;
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<SqliteStatement> select =
          db_->Prepare("SELECT coalesce(max(id), 0) FROM events WHERE time_us < ?1");
      if (!select.ok()) return select.status();
      select->Bind(1, cutoff_us);
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      last_old = *row ? select->Int(0) : 0;
    }
    if (last_old > 0) {
      absl::StatusOr<int64_t> events = PruneEventsThrough(last_old);
      if (!events.ok()) return events.status();
      result.events_deleted += *events;
    }
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
