// DeviceManager on a real ThreadPoolExecutor(2) with fake drivers: name resolution, setup,
// fleet-wide tick / emergency stop / shutdown and the blocking Call helper. Waits use
// absl::Notification, never sleeps; what depends on a strand being idle (Dispatch) runs on a
// ManualExecutor instead.
#include "plugin/core/device_manager.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;

class DeviceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    executor_ = std::make_unique<ThreadPoolExecutor>(2);
    manager_ = std::make_unique<DeviceManager>(*executor_, DeviceContext{clock_, fanout_, runs_});
  }
  void TearDown() override {
    if (!gate_.HasBeenNotified()) gate_.Notify();
    executor_.reset();  // runs every queued task and joins before the strands go away
    manager_.reset();
  }
  void AddDevices(std::vector<std::string> ids, DriverInfo info = FakePenInfo()) {
    for (const std::string& id : ids) {
      auto driver = std::make_unique<FakeDriver>(info);
      drivers_.push_back(driver.get());
      ASSERT_TRUE(manager_->AddDevice(id, std::move(driver)).ok());
    }
  }
  // Leases and starts device `index`; returns the lease id.
  std::string StartDevice(uint32_t index) {
    return manager_->Call(index, [](Device& d) {
      absl::StatusOr<LeaseGrant> grant = d.AcquireLease("fleet-test", absl::Seconds(60));
      EXPECT_TRUE(grant.ok()) << grant.status();
      EXPECT_TRUE(d.Start(grant->lease_id, "").ok());
      return grant->lease_id;
    });
  }
  bool OutputOn(uint32_t index) {
    return manager_->Call(index, [this, index](Device&) { return drivers_[index]->output_on(); });
  }

  VirtualClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<ThreadPoolExecutor> executor_;
  std::unique_ptr<DeviceManager> manager_;
  std::vector<FakeDriver*> drivers_;  // touched only on their device's strand
  absl::Notification gate_;
};

TEST_F(DeviceManagerTest, FindResolvesDeviceNames) {
  AddDevices({"a", "b"});
  absl::StatusOr<uint32_t> index = manager_->Find("devices/b");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 1u);
}

TEST_F(DeviceManagerTest, FindRejectsMalformedNamesNamingTheField) {
  AddDevices({"a"});
  for (const char* name : {"a", "devices/", "devices/a/b", ""}) {
    absl::StatusOr<uint32_t> index = manager_->Find(name, "parent");
    EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(index.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD)) << name;
    EXPECT_THAT(ViolationsOf(index.status()), ElementsAre(Field(&FieldViolation::field, "parent")))
        << name;
  }
}

TEST_F(DeviceManagerTest, FindUnknownDeviceIsDeviceNotFound) {
  AddDevices({"a"});
  absl::StatusOr<uint32_t> index = manager_->Find("devices/zz");
  EXPECT_EQ(index.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(index.status(), HasReason(v1::ERROR_REASON_DEVICE_NOT_FOUND));
}

// Found by tests/fuzz/telemetry_request_fuzzer: a name that is not UTF-8 (text-format files do
// not check) made the error's ErrorInfo and BadRequest unparsable, so it lost its reason.
TEST_F(DeviceManagerTest, FindKeepsReasonAndFieldForANameThatIsNotUtf8) {
  AddDevices({"a"});
  absl::StatusOr<uint32_t> malformed = manager_->Find(
      "\xCB"
      "evices/a",
      "names[0]");
  EXPECT_THAT(malformed.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(malformed.status()),
              ElementsAre(AllOf(Field(&FieldViolation::field, "names[0]"),
                                Field(&FieldViolation::description,
                                      "\"\xEF\xBF\xBD"
                                      "evices/a\" is not a device name devices/{id}"))));
  absl::StatusOr<uint32_t> unknown = manager_->Find("devices/\xFF\xC0z");
  EXPECT_THAT(unknown.status(), HasReason(v1::ERROR_REASON_DEVICE_NOT_FOUND));
  EXPECT_EQ(MetadataOf(unknown.status())["device"], "devices/\xEF\xBF\xBD\xEF\xBF\xBDz");
}

TEST_F(DeviceManagerTest, FindRunDeviceResolvesTheRunsDevice) {
  AddDevices({"a", "b"});
  absl::StatusOr<uint32_t> index = manager_->FindRunDevice("devices/b/runs/0000abcd");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 1u);
  EXPECT_THAT(manager_->FindRunDevice("devices/zz/runs/1").status(),
              HasReason(v1::ERROR_REASON_DEVICE_NOT_FOUND));
}

TEST_F(DeviceManagerTest, FindRunDeviceRejectsMalformedRunNames) {
  AddDevices({"a"});
  for (const char* name : {"devices/a", "devices/a/runs/", "runs/1", "devices//runs/1"}) {
    EXPECT_THAT(manager_->FindRunDevice(name).status(), HasReason(v1::ERROR_REASON_INVALID_FIELD))
        << name;
  }
}

TEST_F(DeviceManagerTest, DuplicateIdIsRejected) {
  AddDevices({"a"});
  absl::Status status = manager_->AddDevice("a", std::make_unique<FakeDriver>(FakePenInfo()));
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_EQ(manager_->size(), 1u);
}

TEST_F(DeviceManagerTest, InitializeAllConnectsEveryDevice) {
  AddDevices({"a", "b"});
  auto offline = std::make_unique<FakeDriver>(FakeStimulatorInfo());
  offline->set_link_up(false);
  ASSERT_TRUE(manager_->AddDevice("c", std::move(offline)).ok());
  manager_->InitializeAll();
  EXPECT_EQ(manager_->view(0).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_EQ(manager_->view(1).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_EQ(manager_->view(2).state(), v1::DEVICE_STATE_OFFLINE);
}

TEST_F(DeviceManagerTest, CallReturnsTheResultFromTheStrand) {
  AddDevices({"a", "b"});
  manager_->InitializeAll();
  EXPECT_EQ(manager_->Call(1, [](Device& d) { return d.name(); }), "devices/b");
  absl::StatusOr<v1::Settings> applied = manager_->Call(0, [](Device& d) {
    absl::StatusOr<LeaseGrant> grant = d.AcquireLease("t", absl::Seconds(10));
    return d.Configure(grant->lease_id, DeviceFixture::PenSettings(1.23, 100), false);
  });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->microneedling().needle_depth_mm(), 1.25);
}

// Dispatch runs a command on the calling thread only for drivers whose hooks never block, and
// only while the device's strand is idle. On a ManualExecutor nothing runs behind the test's
// back, so "idle" is a fact here, not a hope about a thread pool (a pool's drain can still be
// finishing after the task that notified the test).
TEST(DeviceManagerDispatchTest, RunsInlineOnlyForAnIdleDeviceWhoseDriverNeverBlocks) {
  ManualExecutor executor;
  VirtualClock clock;
  TelemetryFanout fanout;
  RunRegistry runs;
  DeviceManager manager(executor, DeviceContext{clock, fanout, runs});
  DriverInfo never_blocks = FakePenInfo();
  never_blocks.hooks_never_block = true;
  DriverInfo may_block = FakePenInfo();
  may_block.hooks_never_block = false;
  ASSERT_TRUE(manager.AddDevice("sim", std::make_unique<FakeDriver>(never_blocks)).ok());
  ASSERT_TRUE(manager.AddDevice("real", std::make_unique<FakeDriver>(may_block)).ok());
  for (uint32_t i = 0; i < manager.size(); ++i) manager.Post(i, [](Device& d) { d.Initialize(); });
  executor.RunUntilIdle();

  bool ran_sim = false;
  manager.Dispatch(0, [&ran_sim](Device&) { ran_sim = true; });
  EXPECT_TRUE(ran_sim) << "an idle device with a never-blocking driver runs it at once";

  bool ran_real = false;
  manager.Dispatch(1, [&ran_real](Device&) { ran_real = true; });
  EXPECT_FALSE(ran_real) << "a driver that may block keeps its calls on the executor";
  executor.RunUntilIdle();
  EXPECT_TRUE(ran_real);

  std::vector<std::string> order;
  manager.Post(0, [&order](Device&) { order.push_back("posted"); });
  manager.Dispatch(0, [&order](Device&) { order.push_back("dispatched"); });
  EXPECT_TRUE(order.empty()) << "a busy strand queues a dispatched command behind its work";
  executor.RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("posted", "dispatched"));
}

TEST_F(DeviceManagerTest, TickAllTicksEveryDeviceThenCallsDoneOnce) {
  AddDevices({"a", "b", "c"});
  manager_->InitializeAll();
  clock_.Advance(absl::Milliseconds(10));
  std::atomic<int> done_calls{0};
  absl::Notification done;
  manager_->TickAll([&] {
    done_calls.fetch_add(1);
    done.Notify();
  });
  done.WaitForNotification();
  for (uint32_t i = 0; i < manager_->size(); ++i) {
    EXPECT_EQ(manager_->view(i).latest_sample().sequence, 2u) << "device " << i;
    EXPECT_EQ(manager_->view(i).latest_sample().device_time_us, absl::ToUnixMicros(clock_.Now()));
  }
  for (uint32_t i = 0; i < manager_->size(); ++i) manager_->Call(i, [](Device&) { return 0; });
  EXPECT_EQ(done_calls.load(), 1);
}

// A tick runs inline only on an idle strand: behind a busy device's queued work it waits its
// turn, so a command queued before a tick sees the device time it was queued at, never a tick
// ahead of it. 600 devices span several tick tasks.
TEST(DeviceManagerTickTest, TicksIdleDevicesAndQueuesBehindBusyOnesAcrossManyDevices) {
  ManualExecutor executor;
  VirtualClock clock;
  TelemetryFanout fanout;
  RunRegistry runs;
  DeviceManager manager(executor, DeviceContext{clock, fanout, runs});
  constexpr uint32_t kDevices = 600;
  DriverInfo never_blocks = FakePenInfo();
  never_blocks.hooks_never_block = true;  // Dispatch below runs on this thread
  for (uint32_t i = 0; i < kDevices; ++i) {
    ASSERT_TRUE(
        manager.AddDevice(absl::StrCat("d", i), std::make_unique<FakeDriver>(never_blocks)).ok());
  }
  for (uint32_t i = 0; i < kDevices; ++i) manager.Post(i, [](Device& d) { d.Initialize(); });
  executor.RunUntilIdle();
  clock.Advance(absl::Milliseconds(10));
  // The round starts while device 0 runs a task that queued another behind itself: when the
  // tick reaches device 0 its strand is not running, but work is queued (its drain is
  // scheduled behind the round's tick tasks).
  std::vector<uint64_t> seen_before_tick;
  int done_calls = 0;
  manager.Dispatch(0, [&](Device&) {
    manager.Post(0, [&seen_before_tick](Device& d) {
      seen_before_tick.push_back(d.view().latest_sample().sequence);
    });
    manager.TickAll([&done_calls] { ++done_calls; });
  });
  EXPECT_EQ(done_calls, 0) << "nothing ran before the executor did";
  executor.RunUntilIdle();
  EXPECT_EQ(done_calls, 1);
  EXPECT_THAT(seen_before_tick, ElementsAre(1u)) << "the queued task ran before the tick";
  for (uint32_t i = 0; i < kDevices; ++i) {
    EXPECT_EQ(manager.view(i).latest_sample().sequence, 2u) << "device " << i;
    EXPECT_EQ(manager.view(i).latest_sample().device_time_us, absl::ToUnixMicros(clock.Now()));
  }
}

TEST_F(DeviceManagerTest, EmergencyStopAllRunsAheadOfQueuedWorkAndStopsEveryOutput) {
  AddDevices({"a", "b", "c"});
  manager_->InitializeAll();
  const std::string lease = StartDevice(0);
  StartDevice(1);
  StartDevice(2);
  // Hold device a's strand, then queue a backlog of normal work behind the gate.
  manager_->Post(0, [this](Device&) { gate_.WaitForNotification(); });
  constexpr int kBacklog = 1000;
  std::atomic<int> backlog_ran{0};
  std::atomic<int> backlog_saw_running{0};
  for (int i = 0; i < kBacklog; ++i) {
    manager_->Post(0, [&, lease](Device& d) {
      if (d.state() != v1::DEVICE_STATE_ESTOPPED) backlog_saw_running.fetch_add(1);
      (void)d.Configure(lease, DeviceFixture::PenSettings(1.0, 100), false);
      backlog_ran.fetch_add(1);
    });
  }
  std::vector<v1::DeviceState> states_at_done;
  absl::Notification done;
  manager_->EmergencyStopAll([&] {
    for (uint32_t i = 0; i < manager_->size(); ++i)
      states_at_done.push_back(manager_->view(i).state());
    done.Notify();
  });
  gate_.Notify();
  done.WaitForNotification();
  EXPECT_THAT(states_at_done, ElementsAre(v1::DEVICE_STATE_ESTOPPED, v1::DEVICE_STATE_ESTOPPED,
                                          v1::DEVICE_STATE_ESTOPPED));
  for (uint32_t i = 0; i < manager_->size(); ++i) EXPECT_FALSE(OutputOn(i)) << "device " << i;
  EXPECT_EQ(backlog_ran.load(), kBacklog);
  EXPECT_EQ(backlog_saw_running.load(), 0) << "the emergency stop must bypass queued work";
}

TEST_F(DeviceManagerTest, ShutdownAllStopsOutputsAndEndsRuns) {
  AddDevices({"a", "b"});
  manager_->InitializeAll();
  StartDevice(0);
  const std::string run_name = manager_->Call(1, [](Device& d) {
    absl::StatusOr<LeaseGrant> grant = d.AcquireLease("t", absl::Seconds(60));
    v1::RunStep step;
    step.set_duration_s(10);
    absl::StatusOr<RunPtr> run = d.StartRun(grant->lease_id, {step}, "");
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? (*run)->name() : std::string();
  });
  manager_->Wait([this](Done done) { manager_->ShutdownAll(std::move(done)); });
  EXPECT_EQ(manager_->view(0).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_EQ(manager_->view(1).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(OutputOn(0));
  EXPECT_FALSE(OutputOn(1));
  ASSERT_NE(runs_.Get(run_name), nullptr);
  EXPECT_EQ(runs_.Get(run_name)->end_reason(), v1::RUN_END_REASON_SHUTDOWN);
}

}  // namespace
}  // namespace derma::testing
