#include "plugin/audit/audit_store.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/audit/audit_schema.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

using google::protobuf::util::TimeUtil;

constexpr absl::string_view kInsertEvent =
    "INSERT INTO events (id, time_us, principal, device, kind, method, summary, code, reason,"
    " detail, count, peer_ip, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
    " ?13)";
constexpr absl::string_view kSelectEvents =
    "SELECT " DERMA_AUDIT_EVENT_COLUMNS " FROM events WHERE id < ?1";
constexpr absl::string_view kUpsertRun =
    "INSERT INTO runs (name, device, start_us, end_us, state, end_reason, run)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO UPDATE SET"
    " device = excluded.device, start_us = excluded.start_us, end_us = excluded.end_us,"
    " state = excluded.state, end_reason = excluded.end_reason, run = excluded.run";

absl::Status InvalidField(absl::string_view field, absl::string_view description) {
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(field, ": ", description), {},
                   {{std::string(field), std::string(description)}});
}

absl::Status CheckEvent(const AuditEvent& event) {
  if (event.kind == v1::AUDIT_EVENT_KIND_UNSPECIFIED || !v1::AuditEventKind_IsValid(event.kind)) {
    return InvalidField("kind", absl::StrCat("must be a known kind, got ", event.kind));
  }
  return absl::OkStatus();
}

absl::Status CheckRun(const v1::Run& run) {
  if (run.name().empty()) return InvalidField("name", "must be set");
  if (run.device().empty()) return InvalidField("device", "must be set");
  return absl::OkStatus();
}

int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// The last device time the stored run shows it active: its start plus the output-on time of
// its last recorded ledger. The run stores no later device time of its own (and nothing of
// time spent paused), so this is never later than the run's true last device time.
int64_t LastRecordedDeviceMicros(const v1::Run& run) {
  const double on_s = run.ledger().output_on_s();
  const int64_t on_us = std::isfinite(on_s) && on_s > 0 ? std::llround(on_s * 1e6) : 0;
  return ToMicros(run.start_time()) + on_us;
}

std::string WithoutPrefix(std::string name, absl::string_view prefix) {
  if (absl::StartsWith(name, prefix)) name.erase(0, prefix.size());
  return name;
}

}  // namespace

AuditStore::AuditStore(std::unique_ptr<SqliteDb> db, RetentionOptions retention,
                       std::string checkpoint_key)
    : path_(db->path()),
      retention_(retention),
      checkpoint_key_(std::move(checkpoint_key)),
      db_(std::move(db)) {}

absl::StatusOr<int64_t> AuditStore::InsertEvent(const AuditEvent& event) {
  AuditEvent chained = event;
  chained.id = head_.id + 1;
  if (chained.count < 1) chained.count = 1;
  const std::string hash = ChainLink(head_.hash, chained);
  absl::StatusOr<SqliteStatement> insert = db_->Prepare(kInsertEvent);
  if (!insert.ok()) return insert.status();
  insert->Bind(1, chained.id)
      .Bind(2, chained.time_us)
      .Bind(3, chained.principal)
      .Bind(4, chained.device)
      .Bind(5, AuditKindName(chained.kind))
      .Bind(6, chained.method)
      .Bind(7, chained.summary)
      .Bind(8, int64_t{chained.code})
      .Bind(9, chained.reason)
      .Bind(10, chained.detail)
      .Bind(11, chained.count)
      .Bind(12, chained.peer_ip)
      .BindBlob(13, hash);
  if (absl::Status s = insert->Run(); !s.ok()) return s;
  head_.id = chained.id;
  head_.hash = hash;
  ++head_.length;
  return chained.id;
}

absl::StatusOr<std::vector<int64_t>> AuditStore::WriteTransaction(
    const std::vector<AuditEvent>& events, const std::vector<v1::Run>& runs) {
  for (const AuditEvent& event : events) {
    if (absl::Status s = CheckEvent(event); !s.ok()) return s;
  }
  std::vector<std::string> serialized;
  serialized.reserve(runs.size());
  for (const v1::Run& run : runs) {
    if (absl::Status s = CheckRun(run); !s.ok()) return s;
    serialized.push_back(run.SerializeAsString());
  }
  std::vector<int64_t> ids;
  if (events.empty() && runs.empty()) return ids;
  absl::MutexLock lock(&mu_);
  if (absl::Status s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  const ChainHead before = head_;
  absl::Status status = ReadHead();
  for (size_t i = 0; status.ok() && i < events.size(); ++i) {
    absl::StatusOr<int64_t> id = InsertEvent(events[i]);
    status = id.status();
    if (id.ok()) ids.push_back(*id);
  }
  for (size_t i = 0; status.ok() && i < runs.size(); ++i) {
    status = UpsertRun(runs[i], serialized[i]);
  }
  if (status.ok()) status = db_->Exec("COMMIT");
  if (!status.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();  // the first error is the one to report
    head_ = before;
    return status;
  }
  return ids;
}

absl::StatusOr<int64_t> AuditStore::Append(const AuditEvent& event) {
  absl::StatusOr<std::vector<int64_t>> ids = WriteTransaction({event}, {});
  if (!ids.ok()) return ids.status();
  return ids->front();
}

absl::Status AuditStore::AppendBatch(const std::vector<AuditEvent>& events) {
  return WriteTransaction(events, {}).status();
}

absl::StatusOr<AuditEventPage> AuditStore::ListEvents(const AuditEventFilter& filter, int page_size,
                                                      const std::string& page_token) {
  if (page_size < 0) return InvalidField("page_size", absl::StrCat("must be ≥ 0, got ", page_size));
  const int size = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  int64_t before_id = std::numeric_limits<int64_t>::max();
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, &before_id) || before_id <= 0)) {
    return InvalidField("page_token", "is not a token from a previous page");
  }
  // Only the filters in use appear in the SQL, so SQLite can pick the matching index.
  std::string sql(kSelectEvents);
  if (!filter.device.empty()) absl::StrAppend(&sql, " AND device = ?2");
  if (!filter.principal.empty()) absl::StrAppend(&sql, " AND principal = ?3");
  if (filter.since_us != 0) absl::StrAppend(&sql, " AND time_us >= ?4");
  if (filter.until_us != 0) absl::StrAppend(&sql, " AND time_us < ?5");
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ?6");

  absl::MutexLock lock(&mu_);
  absl::StatusOr<SqliteStatement> select = db_->Prepare(sql);
  if (!select.ok()) return select.status();
  select->Bind(1, before_id).Bind(6, int64_t{size} + 1);
  if (!filter.device.empty()) select->Bind(2, filter.device);
  if (!filter.principal.empty()) select->Bind(3, filter.principal);
  if (filter.since_us != 0) select->Bind(4, filter.since_us);
  if (filter.until_us != 0) select->Bind(5, filter.until_us);
  AuditEventPage page;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.events.size()) == size) {
      page.next_page_token = absl::StrCat(page.events.back().id);
      break;
    }
    page.events.push_back(AuditEventFromRow(*select));
  }
  return page;
}

absl::Status AuditStore::UpsertRun(const v1::Run& run, const std::string& serialized) {
  absl::StatusOr<SqliteStatement> upsert = db_->Prepare(kUpsertRun);
  if (!upsert.ok()) return upsert.status();
  upsert->Bind(1, run.name()).Bind(2, run.device()).Bind(3, ToMicros(run.start_time()));
  if (run.has_end_time()) upsert->Bind(4, ToMicros(run.end_time()));  // else NULL
  upsert->Bind(5, WithoutPrefix(v1::RunState_Name(run.state()), "RUN_STATE_"))
      .Bind(6, WithoutPrefix(v1::RunEndReason_Name(run.end_reason()), "RUN_END_REASON_"))
      .BindBlob(7, serialized);
  return upsert->Run();
}

absl::Status AuditStore::RecordRun(const v1::Run& run) {
  if (absl::Status s = CheckRun(run); !s.ok()) return s;
  const std::string serialized = run.SerializeAsString();
  absl::MutexLock lock(&mu_);
  return UpsertRun(run, serialized);
}

absl::Status AuditStore::Commit(const std::vector<AuditEvent>& events,
                                const std::vector<v1::Run>& runs) {
  return WriteTransaction(events, runs).status();
}

absl::StatusOr<std::vector<v1::Run>> AuditStore::EndInterruptedRuns() {
  std::vector<v1::Run> interrupted;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<SqliteStatement> select =
        db_->Prepare("SELECT run FROM runs WHERE end_us IS NULL ORDER BY start_us");
    if (!select.ok()) return select.status();
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (!interrupted.emplace_back().ParseFromString(select->Blob(0))) {
        return absl::DataLossError(
            absl::StrCat("audit store ", path_, ": a stored run is unreadable"));
      }
    }
  }
  for (v1::Run& run : interrupted) {
    run.set_state(v1::RUN_STATE_ENDED_EARLY);
    run.set_end_reason(v1::RUN_END_REASON_INTERRUPTED);
    // Device time, as start_time: the restart's wall time may be months from a virtual clock.
    *run.mutable_end_time() = TimeUtil::MicrosecondsToTimestamp(LastRecordedDeviceMicros(run));
    run.set_end_message(
        "the service stopped without shutting down while the run was active; the ledger is the "
        "last one recorded");
  }
  if (absl::Status s = Commit({}, interrupted); !s.ok()) return s;
  return interrupted;
}

absl::StatusOr<std::vector<v1::Run>> AuditStore::ListRuns(const std::string& device, int64_t offset,
                                                          int64_t limit) {
  if (offset < 0) return InvalidField("offset", absl::StrCat("must be ≥ 0, got ", offset));
  if (limit < 0) return InvalidField("limit", absl::StrCat("must be ≥ 0, got ", limit));
  const absl::string_view sql =
      device.empty() ? "SELECT run FROM runs ORDER BY start_us DESC, rowid DESC LIMIT ?2 OFFSET ?3"
                     : "SELECT run FROM runs WHERE device = ?1 ORDER BY start_us DESC, rowid DESC"
                       " LIMIT ?2 OFFSET ?3";
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SqliteStatement> select = db_->Prepare(sql);
  if (!select.ok()) return select.status();
  if (!device.empty()) select->Bind(1, device);
  select->Bind(2, limit).Bind(3, offset);
  std::vector<v1::Run> runs;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return runs;
    if (!runs.emplace_back().ParseFromString(select->Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("audit store ", path_, ": a stored run is unreadable"));
    }
  }
}

absl::StatusOr<v1::Run> AuditStore::GetRun(const std::string& name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<SqliteStatement> select = db_->Prepare("SELECT run FROM runs WHERE name = ?1");
  if (!select.ok()) return select.status();
  select->Bind(1, name);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_RUN_NOT_FOUND,
                     absl::StrCat("no run named ", name, " in the audit store"), {{"run", name}});
  }
  v1::Run run;
  if (!run.ParseFromString(select->Blob(0))) {
    return absl::DataLossError(
        absl::StrCat("audit store ", path_, ": run ", name, " is unreadable"));
  }
  return run;
}

}  // namespace derma
