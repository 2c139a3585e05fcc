// AuditTrail: a record's callback runs only once it is durable; concurrent records share
// commits (group commit); a command's record and its device events share one commit, and
// events alone are committed after a short grace; device events and the runs they name are
// recorded; Flush waits for
// device events; a failed commit reports the error and marks the trail unwritable until a
// commit succeeds; events lost to an overflow are recorded as lost; pruning runs on its own;
// after Close a record is refused. Also the record of each device event kind.
#include "plugin/audit/audit_trail.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "tests/audit/sqlite_write_lock.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;

AuditEvent Command(const std::string& method) {
  AuditEvent event;
  event.time_us = 1767225600000000;
  event.principal = "alice";
  event.device = "devices/pen-1";
  event.kind = v1::AUDIT_EVENT_KIND_COMMAND;
  event.method = method;
  return event;
}

EventPtr StateChange(const std::string& device, uint64_t sequence, v1::DeviceState from,
                     v1::DeviceState to) {
  auto event = std::make_shared<v1::DeviceEvent>();
  event->set_device(device);
  event->set_sequence(sequence);
  event->set_type(v1::DEVICE_EVENT_TYPE_STATE_CHANGED);
  event->set_from_state(from);
  event->set_to_state(to);
  return event;
}

class AuditTrailTest : public ::testing::Test {
 protected:
  AuditTrailTest() {
    std::string pattern = (std::filesystem::temp_directory_path() / "derma-trail-XXXXXX").string();
    dir_ = mkdtemp(pattern.data()) == nullptr ? "" : pattern;
  }
  ~AuditTrailTest() override { std::filesystem::remove_all(dir_); }

  void Open(RetentionOptions retention = {}, AuditTrailOptions options = {}) {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path(), retention);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    trail_ = std::make_unique<AuditTrail>(*store_, fanout_, runs_, options);
  }
  std::string path() const { return dir_ + "/audit.db"; }

  // Records synchronously: the status the callback was given.
  absl::Status RecordAndWait(AuditEvent event) {
    absl::Notification done;
    absl::Status result;
    trail_->Record(std::move(event), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }
  std::vector<AuditEvent> Stored() {
    absl::StatusOr<AuditEventPage> page = store_->ListEvents({}, 1000, "");
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->events : std::vector<AuditEvent>{};
  }

  std::string dir_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<AuditStore> store_;
  std::unique_ptr<AuditTrail> trail_;
};

TEST_F(AuditTrailTest, CallbackRunsOnceTheRecordIsInTheFile) {
  Open();
  ASSERT_TRUE(RecordAndWait(Command("/derma.v1.DeviceControl/Start")).ok());
  // A separate connection sees it at once.
  absl::StatusOr<std::unique_ptr<AuditStore>> other = AuditStore::Open(path());
  ASSERT_TRUE(other.ok()) << other.status();
  absl::StatusOr<AuditEventPage> page = (*other)->ListEvents({}, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].method, "/derma.v1.DeviceControl/Start");
}

TEST_F(AuditTrailTest, ConcurrentRecordsShareCommits) {
  Open();
  constexpr int kThreads = 8, kEach = 100;  // within one page of Stored()
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        if (RecordAndWait(Command("/derma.v1.DeviceControl/Configure")).ok()) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  EXPECT_EQ(trail_->records_written(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(Stored().size(), static_cast<size_t>(kThreads * kEach));
  // Eight callers waiting at once: most commits carry more than one record.
  EXPECT_LT(trail_->commits(), static_cast<uint64_t>(kThreads * kEach));
}

TEST_F(AuditTrailTest, DeviceEventsAndTheRunsTheyNameAreRecordedByFlush) {
  Open();
  auto run = std::make_shared<v1::Run>();
  run->set_name("devices/pen-1/runs/r1");
  run->set_device("devices/pen-1");
  run->set_state(v1::RUN_STATE_RUNNING);
  run->mutable_ledger()->set_strokes_delivered(7);
  runs_.Publish(run);
  auto started = std::make_shared<v1::DeviceEvent>();
  started->set_device("devices/pen-1");
  started->set_sequence(1);
  started->set_type(v1::DEVICE_EVENT_TYPE_RUN_STARTED);
  started->set_run("devices/pen-1/runs/r1");
  fanout_.PublishEvent(0, started);
  fanout_.PublishEvent(
      0, StateChange("devices/pen-1", 2, v1::DEVICE_STATE_IDLE, v1::DEVICE_STATE_RUNNING));
  trail_->Flush();

  const std::vector<AuditEvent> stored = Stored();  // newest first
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[1].kind, v1::AUDIT_EVENT_KIND_RUN);
  EXPECT_EQ(stored[0].kind, v1::AUDIT_EVENT_KIND_STATE_CHANGE);
  EXPECT_THAT(stored[0].detail, HasSubstr("IDLE -> RUNNING"));
  absl::StatusOr<v1::Run> kept = store_->GetRun("devices/pen-1/runs/r1");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->ledger().strokes_delivered(), 7u);
}

TEST_F(AuditTrailTest, ACommandsRecordAndTheEventsPublishedJustBeforeItShareOneCommit) {
  AuditTrailOptions options;
  options.events_alone_grace = absl::Hours(1);  // the record always comes within the grace
  Open({}, options);
  fanout_.PublishEvent(
      0, StateChange("devices/pen-1", 1, v1::DEVICE_STATE_IDLE, v1::DEVICE_STATE_RUNNING));
  // Not needed for the outcome (the grace is an hour): time in which a writer that committed
  // events alone would have done so, so the test shows the difference.
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(RecordAndWait(Command("/derma.v1.DeviceControl/Start")).ok());
  EXPECT_EQ(trail_->commits(), 1u);  // one fsync acknowledges the command with its event
  EXPECT_EQ(Stored().size(), 2u);
  // The commit's time is observed once, and it took some time (an fsync at least).
  const DurationHistogram::Totals times = trail_->commit_times().totals();
  EXPECT_EQ(times.count, 1u);
  EXPECT_GT(times.sum, absl::ZeroDuration());
}

TEST_F(AuditTrailTest, DeviceEventsAloneAreCommittedAfterTheGraceWithoutAFlush) {
  AuditTrailOptions options;
  options.events_alone_grace = absl::Milliseconds(20);
  Open({}, options);
  fanout_.PublishEvent(
      0, StateChange("devices/pen-1", 1, v1::DEVICE_STATE_IDLE, v1::DEVICE_STATE_FAULT));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (trail_->records_written() < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(trail_->records_written(), 1u);
  EXPECT_EQ(Stored().size(), 1u);
}

TEST_F(AuditTrailTest, ARunNamedBeforeItIsPublishedIsRecordedWithTheNextCommit) {
  Open();
  // A device emits RUN_STARTED before it publishes the run.
  auto started = std::make_shared<v1::DeviceEvent>();
  started->set_device("devices/pen-1");
  started->set_sequence(1);
  started->set_type(v1::DEVICE_EVENT_TYPE_RUN_STARTED);
  started->set_run("devices/pen-1/runs/r2");
  fanout_.PublishEvent(0, started);
  trail_->Flush();
  EXPECT_EQ(store_->GetRun("devices/pen-1/runs/r2").status().code(), absl::StatusCode::kNotFound);
  auto run = std::make_shared<v1::Run>();
  run->set_name("devices/pen-1/runs/r2");
  run->set_device("devices/pen-1");
  run->set_state(v1::RUN_STATE_RUNNING);
  runs_.Publish(run);
  // The StartRun record comes after the run is published: the run is committed with it.
  ASSERT_TRUE(RecordAndWait(Command("/derma.v1.DeviceControl/StartRun")).ok());
  EXPECT_TRUE(store_->GetRun("devices/pen-1/runs/r2").ok());
}

TEST_F(AuditTrailTest, SamplesAreNotQueuedForTheTrail) {
  Open();
  Sample sample;
  sample.device_index = 0;
  for (int i = 0; i < 1000; ++i) fanout_.Publish(sample);
  trail_->Flush();
  EXPECT_TRUE(Stored().empty());
  EXPECT_EQ(fanout_.dropped_total(), 0u);
}

TEST_F(AuditTrailTest, FailedCommitReportsTheErrorAndMarksTheTrailUnwritableUntilOneSucceeds) {
  Open();
  SqliteWriteLock lock(path());
  const absl::Status failed = RecordAndWait(Command("/derma.v1.DeviceControl/Start"));
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.message()), HasSubstr(path()));
  EXPECT_FALSE(trail_->writable());
  EXPECT_EQ(trail_->write_failures(), 1u);
  lock.Release();
  EXPECT_TRUE(RecordAndWait(Command("/derma.v1.DeviceControl/Stop")).ok());
  EXPECT_TRUE(trail_->writable());
  ASSERT_EQ(Stored().size(), 1u);  // the failed commit wrote nothing
}

TEST_F(AuditTrailTest, EventsLostToAnOverflowAreRecordedAsLost) {
  Open({}, {.event_capacity = 4});
  {
    SqliteWriteLock lock(path());
    // The writer waits for the lock on this commit (or the next) while events pile up.
    trail_->Record(Command("/derma.v1.DeviceControl/Start"), nullptr);
    for (uint64_t i = 1; i <= 20; ++i) {
      fanout_.PublishEvent(
          0, StateChange("devices/pen-1", i, v1::DEVICE_STATE_IDLE, v1::DEVICE_STATE_RUNNING));
    }
  }
  trail_->Flush();
  trail_->Flush();
  bool loss = false;
  for (const AuditEvent& e : Stored()) {
    loss |= e.code == static_cast<int>(absl::StatusCode::kDataLoss) &&
            e.detail.find("fell behind") != std::string::npos;
  }
  EXPECT_TRUE(loss);
  // The new subscription records what comes after.
  fanout_.PublishEvent(
      0, StateChange("devices/pen-1", 21, v1::DEVICE_STATE_RUNNING, v1::DEVICE_STATE_IDLE));
  trail_->Flush();
  EXPECT_THAT(Stored().front().detail, HasSubstr("RUNNING -> IDLE"));
}

TEST_F(AuditTrailTest, PruningRunsOnItsOwnByTheRetentionOptions) {
  Open({.max_rows = 5}, {.prune_interval = absl::Milliseconds(20)});
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(RecordAndWait(Command("/derma.v1.DeviceControl/Start")).ok());
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Stored().size() > 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Stored().size(), 5u);
}

TEST_F(AuditTrailTest, QueriesRunOnTheQueryThread) {
  Open();
  absl::Notification done;
  std::thread::id ran_on;
  trail_->Query([&](AuditStore&) {
    ran_on = std::this_thread::get_id();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_F(AuditTrailTest, RecordAfterCloseIsRefusedAsUnavailable) {
  Open();
  trail_->Close();
  const absl::Status refused = RecordAndWait(Command("/derma.v1.DeviceControl/Start"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(refused), v1::ERROR_REASON_AUDIT_UNAVAILABLE);
}

TEST(AuditEventFromDeviceEventTest, EachEventTypeGetsItsKindAndDetail) {
  const absl::Time now = absl::FromUnixSeconds(1767225600);
  v1::DeviceEvent event;
  event.set_device("devices/stim-1");
  event.set_sequence(9);
  event.set_type(v1::DEVICE_EVENT_TYPE_FAULT_RAISED);
  event.mutable_fault()->set_kind(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
  event.mutable_fault()->set_message("contact lost");
  AuditEvent record = AuditEventFromDeviceEvent(event, now);
  EXPECT_EQ(record.kind, v1::AUDIT_EVENT_KIND_FAULT);
  EXPECT_EQ(record.device, "devices/stim-1");
  EXPECT_EQ(record.time_us, absl::ToUnixMicros(now));
  EXPECT_EQ(record.principal, "");
  EXPECT_THAT(record.detail, HasSubstr("fault raised ELECTRODE_CONTACT_LOST: contact lost"));
  EXPECT_THAT(record.detail, HasSubstr("[event 9,"));

  event.set_type(v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED);
  EXPECT_EQ(AuditEventFromDeviceEvent(event, now).kind, v1::AUDIT_EVENT_KIND_LEASE);
  event.set_type(v1::DEVICE_EVENT_TYPE_RUN_ENDED);
  EXPECT_EQ(AuditEventFromDeviceEvent(event, now).kind, v1::AUDIT_EVENT_KIND_RUN);
  event.set_type(v1::DEVICE_EVENT_TYPE_STATE_CHANGED);
  event.set_from_state(v1::DEVICE_STATE_RUNNING);
  event.set_to_state(v1::DEVICE_STATE_ESTOPPED);
  EXPECT_EQ(AuditEventFromDeviceEvent(event, now).kind, v1::AUDIT_EVENT_KIND_ESTOP);
  event.set_to_state(v1::DEVICE_STATE_FAULT);
  EXPECT_EQ(AuditEventFromDeviceEvent(event, now).kind, v1::AUDIT_EVENT_KIND_STATE_CHANGE);
}

AuditEvent Refused(const std::string& ip) {
  AuditEvent event;
  event.time_us = 1;
  event.kind = v1::AUDIT_EVENT_KIND_AUTH_FAILURE;
  event.method = "/derma.v1.DeviceControl/ListDevices";
  event.code = 16;
  event.reason = "UNAUTHENTICATED";
  event.peer_ip = ip;
  return event;
}

TEST_F(AuditTrailTest, AFloodOfRefusalsFromOneAddressIsTwoRecordsWhoseCountsSumToIt) {
  Open({}, {.refusals = {.interval = absl::Hours(1), .max_pairs = 4}});
  constexpr int kRefusals = 20000;
  for (int i = 0; i < kRefusals; ++i) trail_->RecordRefusal(Refused("127.0.0.1"));
  trail_->Close();  // the counted rest is written at shutdown: nothing is lost
  std::vector<AuditEvent> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].count + stored[1].count, kRefusals);
  EXPECT_EQ(stored[1].count, 1);
  EXPECT_EQ(stored[0].peer_ip, "127.0.0.1");
  EXPECT_EQ(trail_->refusals(), uint64_t{kRefusals});
}

TEST_F(AuditTrailTest, CountedRefusalsAreWrittenWhenTheirIntervalEnds) {
  Open({}, {.refusals = {.interval = absl::Milliseconds(50), .max_pairs = 4}});
  for (int i = 0; i < 10; ++i) trail_->RecordRefusal(Refused("127.0.0.1"));
  // No Close: the writer wakes at the interval's end by itself.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Stored().size() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  std::vector<AuditEvent> stored = Stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].count, 9);
}

}  // namespace
}  // namespace derma::testing
