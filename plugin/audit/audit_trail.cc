#include "plugin/audit/audit_trail.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

// Device events taken from the subscription per Drain call.
constexpr size_t kDrainChunk = 4096;

absl::Status ClosedError() {
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_AUDIT_UNAVAILABLE,
                   "the audit trail is closed (the service is stopping)");
}

}  // namespace

AuditTrail::AuditTrail(AuditStore& store, TelemetryFanout& fanout, const RunRegistry& runs,
                       AuditTrailOptions options)
    : store_(store), fanout_(fanout), runs_(runs), options_(options), coalescer_(options.refusals) {
  Subscribe();
  writer_ = std::thread([this] { WriterLoop(); });
  querier_ = std::thread([this] { QueryLoop(); });
}

AuditTrail::~AuditTrail() { Close(); }

void AuditTrail::Subscribe() {
  SubscriptionOptions subscription;
  subscription.events_only = true;
  subscription.event_capacity = options_.event_capacity;
  subscription_ = fanout_.Subscribe(std::move(subscription));
  subscription_->SetWakeup([this] {
    absl::MutexLock lock(&mu_);
    events_waiting_ = true;
  });
}

void AuditTrail::Record(AuditEvent event, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back({std::move(event), std::move(done)});
      return;
    }
  }
  if (done) std::move(done)(ClosedError());
}

void AuditTrail::RecordRefusal(AuditEvent refusal) {
  refusals_.fetch_add(1);
  std::optional<AuditEvent> now = coalescer_.Admit(std::move(refusal), absl::Now());
  if (now.has_value()) Record(*std::move(now), nullptr);
}

void AuditTrail::Query(QueryFn query) {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      queries_.push_back(std::move(query));
      return;
    }
  }
  std::move(query)(store_);
}

void AuditTrail::Flush() {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  struct Wait {
    AuditTrail* self;
    uint64_t target;
  } wait{this, ++flush_requested_};
  mu_.Await(absl::Condition(
      +[](Wait* w) {
        w->self->mu_.AssertReaderHeld();
        return w->self->flush_completed_ >= w->target || w->self->closed_;
      },
      &wait));
}

void AuditTrail::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
  }
  if (writer_.joinable()) writer_.join();  // commits what is queued, then ends
  if (querier_.joinable()) querier_.join();
  fanout_.Unsubscribe(subscription_.get());
}

void AuditTrail::WriterLoop() {
  while (true) {
    std::vector<Pending> pending;
    uint64_t flush_target = 0;
    bool last = false;
    const absl::Time refusals_due = coalescer_.NextDue();
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](AuditTrail* self) {
                                  self->mu_.AssertReaderHeld();
                                  return self->events_waiting_ || self->MustCommit();
                                },
                                this),
                            refusals_due);
      if (!MustCommit() && events_waiting_) {
        mu_.AwaitWithTimeout(
            absl::Condition(static_cast<const AuditTrail*>(this), &AuditTrail::MustCommit),
            options_.events_alone_grace);
      }
      pending.swap(queue_);
      events_waiting_ = false;
      flush_target = flush_requested_;
      last = closing_;
    }
    // Counted refusals: at their interval's end, and all of them at the last commit.
    const absl::Time now = absl::Now();
    for (AuditEvent& refusal : last ? coalescer_.TakeAll(now) : coalescer_.TakeDue(now)) {
      pending.push_back({std::move(refusal), nullptr});
    }
    CommitBatch(pending);
    absl::MutexLock lock(&mu_);
    flush_completed_ = flush_target;
    if (last && queue_.empty()) {
      closed_ = true;
      return;
    }
  }
}

bool AuditTrail::MustCommit() const {
  mu_.AssertReaderHeld();
  return !queue_.empty() || closing_ || flush_requested_ > flush_completed_;
}

void AuditTrail::CommitBatch(std::vector<Pending>& pending) {
  // A command's device events were published before its record was queued, so draining after
  // taking the queue writes them no later than the command itself.
  std::vector<AuditEvent> events;
  std::vector<v1::Run> runs;
  DrainDeviceEvents(events, runs);
  events.reserve(events.size() + pending.size());
  for (Pending& p : pending) events.push_back(std::move(p.event));
  if (events.empty() && runs.empty()) return;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = store_.Commit(events, runs);
  commit_times_.Observe(absl::FromChrono(std::chrono::steady_clock::now() - start));
  commits_.fetch_add(1);
  if (status.ok()) {
    records_written_.fetch_add(events.size());
    if (!writable_.exchange(true)) {
      std::fprintf(stderr, "derma: audit trail %s is writable again\n", store_.path().c_str());
    }
  } else {
    write_failures_.fetch_add(1);
    if (writable_.exchange(false)) {
      std::fprintf(stderr, "derma: audit trail %s cannot be written: %s\n", store_.path().c_str(),
                   std::string(status.message()).c_str());
    }
  }
  for (Pending& p : pending) {
    if (p.done) std::move(p.done)(status);
  }
}

void AuditTrail::DrainDeviceEvents(std::vector<AuditEvent>& events, std::vector<v1::Run>& runs) {
  const absl::Time now = absl::Now();
  while (true) {
    TelemetryDrain drain = subscription_->Drain(kDrainChunk);
    for (const TelemetryEntry& entry : drain.entries) {
      if (entry.event == nullptr) continue;
      events.push_back(AuditEventFromDeviceEvent(*entry.event, now));
      if (!entry.event->run().empty()) runs_to_record_.emplace_back(entry.event->run(), 0);
    }
    if (!drain.more) break;
  }
  // The newest snapshot of each run named since the last commit, once per commit.
  std::sort(runs_to_record_.begin(), runs_to_record_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  runs_to_record_.erase(
      std::unique(runs_to_record_.begin(), runs_to_record_.end(),
                  [](const auto& a, const auto& b) { return a.first == b.first; }),
      runs_to_record_.end());
  std::vector<std::pair<std::string, int>> not_yet_published;
  for (auto& [name, lookups] : runs_to_record_) {
    if (RunPtr run = runs_.Get(name); run != nullptr) {
      runs.push_back(*run);
    } else if (lookups + 1 < kRunLookups) {
      not_yet_published.emplace_back(std::move(name), lookups + 1);
    } else {
      std::fprintf(stderr, "derma: audit trail: run %s was never published; not recorded\n",
                   name.c_str());
    }
  }
  runs_to_record_ = std::move(not_yet_published);
  if (subscription_->overflowed()) {
    // Never lose events silently: say so in the trail itself, and start a new subscription.
    AuditEvent loss;
    loss.time_us = absl::ToUnixMicros(now);
    loss.kind = v1::AUDIT_EVENT_KIND_STATE_CHANGE;
    loss.code = static_cast<int>(absl::StatusCode::kDataLoss);
    loss.detail = absl::StrCat("the audit trail fell behind by more than ", options_.event_capacity,
                               " device events; events between this record and the previous "
                               "one may be missing");
    events.push_back(std::move(loss));
    fanout_.Unsubscribe(subscription_.get());
    Subscribe();
  }
}

void AuditTrail::QueryLoop() {
  absl::Time next_prune = absl::Now() + options_.prune_interval;
  while (true) {
    std::vector<QueryFn> queries;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](AuditTrail* self) {
                                  self->mu_.AssertReaderHeld();
                                  return !self->queries_.empty() || self->closed_;
                                },
                                this),
                            next_prune);
      queries.swap(queries_);
      stop = closed_;
    }
    // A query sees every record queued before it (e.g. the refusal just answered).
    if (!queries.empty() && !stop) Flush();
    for (QueryFn& query : queries) std::move(query)(store_);
    if (stop) return;
    if (absl::Now() >= next_prune) {
      if (absl::StatusOr<PruneResult> pruned = store_.Prune(absl::Now()); !pruned.ok()) {
        std::fprintf(stderr, "derma: audit trail %s: pruning failed: %s\n", store_.path().c_str(),
                     std::string(pruned.status().message()).c_str());
      }
      next_prune = absl::Now() + options_.prune_interval;
    }
  }
}

}  // namespace derma
