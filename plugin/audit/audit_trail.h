// AuditTrail: writes the audit trail into an AuditStore without ever blocking a device strand
// or a gRPC thread. Calls are recorded through Record, whose callback runs once the record is
// durable (so the service acknowledges a command only then); device events (state changes,
// faults, lease expiries, emergency stops, runs with their ledgers) arrive through an
// events-only telemetry subscription. One writer thread commits everything that queued up
// since its previous commit in one transaction (group commit: one fsync for many records);
// device events with no record queued wait a short grace (5 ms) for one, so a command and the
// events it caused share one fsync (nobody waits on events alone, and a query flushes them first);
// a second thread answers queries and prunes by the store's retention options, so pruning never
// holds up a command for longer than one batch delete. Layer: plugin/audit. Thread-safe.
#ifndef DERMA_PLUGIN_AUDIT_AUDIT_TRAIL_H_
#define DERMA_PLUGIN_AUDIT_AUDIT_TRAIL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "plugin/audit/audit_event.h"
#include "plugin/audit/audit_store.h"
#include "plugin/audit/refusal_coalescer.h"
#include "plugin/core/duration_histogram.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"

namespace derma {

struct AuditTrailOptions {
  // How often the store is pruned by its retention options (nothing happens without limits).
  absl::Duration prune_interval = absl::Minutes(10);
  // Device events that may wait for the writer; beyond that the trail records the loss.
  size_t event_capacity = size_t{1} << 20;
  // How refused calls (RecordRefusal) are coalesced.
  RefusalCoalescingOptions refusals{};
  // How long device events with no record queued wait for one to share their commit. A
  // command publishes its device events (SETTINGS_APPLIED, state changes) just before its
  // record is queued; committing the events at once would make the command wait for two
  // fsyncs.
  absl::Duration events_alone_grace = absl::Milliseconds(5);
};

// The audit record of one device event (time: `now`). Pure; exposed for tests.
AuditEvent AuditEventFromDeviceEvent(const v1::DeviceEvent& event, absl::Time now);

class AuditTrail {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  using QueryFn = absl::AnyInvocable<void(AuditStore&) &&>;

  // Subscribes to `fanout`'s events and starts the writer and query threads. `store`, `fanout`
  // and `runs` must outlive the trail.
  AuditTrail(AuditStore& store, TelemetryFanout& fanout, const RunRegistry& runs,
             AuditTrailOptions options = {});
  ~AuditTrail();  // Close()
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  // Queues `event`. `done` (may be empty) is called on the writer thread with OK once the
  // record is durable, or with the storage error (then nothing of that commit was written).
  // After Close, `done` is called at once with UNAVAILABLE (AUDIT_UNAVAILABLE).
  void Record(AuditEvent event, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a refused call's record (kind AUTH_FAILURE, peer_ip and reason set) through the
  // trail's RefusalCoalescer: the first refusal of its (peer IP, reason) pair in an interval is
  // queued at once, the rest are counted and written as one record at the interval's end or at
  // Close. Nothing waits for it to be durable. Dropped after Close.
  void RecordRefusal(AuditEvent refusal) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `query` on the query thread (never on the caller's) once everything Recorded before
  // the call is durable or has failed. After Close, on the caller's.
  void Query(QueryFn query) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns once everything recorded, and every device event published, before the call is
  // durable or has failed.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // Flushes, unsubscribes and joins the threads. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // False after a commit failed, until one succeeds again.
  bool writable() const { return writable_.load(); }
  uint64_t records_written() const { return records_written_.load(); }
  uint64_t commits() const { return commits_.load(); }
  // How long each commit took, as the commands in it wait for it: any wait for the store (a
  // query or a prune batch holding it), then the SQLite transaction of everything queued with
  // its fsync (exported as derma_audit_commit_duration_seconds).
  const DurationHistogram& commit_times() const { return commit_times_; }
  uint64_t write_failures() const { return write_failures_.load(); }
  // Refused calls taken by RecordRefusal (each counted once, whether written alone or not).
  uint64_t refusals() const { return refusals_.load(); }
  const std::string& path() const { return store_.path(); }
  // The newest chained record (for the exported head: log lines and metrics).
  AuditStore::ChainHead chain_head() const { return store_.head(); }

 private:
  struct Pending {
    AuditEvent event;
    Done done;
  };

  void Subscribe();
  void WriterLoop();
  void QueryLoop();
  // Moves waiting device events (and the runs they name) into `events` / `runs`.
  void DrainDeviceEvents(std::vector<AuditEvent>& events, std::vector<v1::Run>& runs);
  // Something waits for the writer: a record, a flush, or the close (device events alone do
  // not: they wait up to a short grace for a record to share their commit).
  bool MustCommit() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void CommitBatch(std::vector<Pending>& pending);

  AuditStore& store_;
  TelemetryFanout& fanout_;
  const RunRegistry& runs_;
  const AuditTrailOptions options_;
  std::shared_ptr<TelemetrySubscription> subscription_;  // writer thread only after start
  // Runs named by drained events whose snapshot is not in the registry yet (a device emits
  // RUN_STARTED before it publishes the run): looked up again at every commit until found.
  // The command that started the run is queued only after the run is published, so it is
  // never committed without its run. A name still unknown after kRunLookups commits (the
  // registry forgot it) is dropped. Writer thread only.
  static constexpr int kRunLookups = 1000;
  std::vector<std::pair<std::string, int>> runs_to_record_;  // name, lookups so far

  absl::Mutex mu_;
  std::vector<Pending> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<QueryFn> queries_ ABSL_GUARDED_BY(mu_);
  bool events_waiting_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t flush_requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flush_completed_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> records_written_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> write_failures_{0};
  std::atomic<uint64_t> refusals_{0};
  DurationHistogram commit_times_;
  RefusalCoalescer coalescer_;
  std::thread writer_;
  std::thread querier_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_AUDIT_TRAIL_H_
