// DeviceManager::EmergencyStopAll's two steps: every output off (on the calling thread for
// idle devices whose driver never blocks) before any device's bookkeeping, `outputs_off` once
// when the last output is off, then `done` once every stop is finished. Orderings run on a
// ManualExecutor, where "idle" is a fact; races with ticks and commands on a real pool.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "plugin/core/device_manager.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;

class FleetStopTest : public ::testing::Test {
 protected:
  // Devices "0".."n-1" with never-blocking fake pens, each leased and RUNNING.
  void StartFleet(Executor& executor, int n) {
    manager_ = std::make_unique<DeviceManager>(executor, DeviceContext{clock_, fanout_, runs_});
    DriverInfo info = FakePenInfo();
    info.hooks_never_block = true;
    for (int i = 0; i < n; ++i) {
      auto driver = std::make_unique<FakeDriver>(info);
      drivers_.push_back(driver.get());
      ASSERT_TRUE(manager_->AddDevice(std::to_string(i), std::move(driver)).ok());
    }
    for (uint32_t i = 0; i < manager_->size(); ++i) {
      manager_->Post(i, [](Device& d) {
        d.Initialize();
        absl::StatusOr<LeaseGrant> grant = d.AcquireLease("fleet-stop-test", absl::Seconds(60));
        ASSERT_TRUE(grant.ok()) << grant.status();
        ASSERT_TRUE(d.Start(grant->lease_id, "").ok());
      });
    }
  }
  std::vector<v1::DeviceState> States() const {
    std::vector<v1::DeviceState> states;
    for (uint32_t i = 0; i < manager_->size(); ++i) states.push_back(manager_->view(i).state());
    return states;
  }

  VirtualClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<DeviceManager> manager_;
  std::vector<FakeDriver*> drivers_;
};

TEST_F(FleetStopTest, EveryOutputGoesOffBeforeAnyDeviceIsLatched) {
  ManualExecutor executor;
  StartFleet(executor, 3);
  executor.RunUntilIdle();
  std::vector<std::string> log;
  std::vector<bool> outputs_at_off;
  std::vector<v1::DeviceState> states_at_off;
  manager_->EmergencyStopAll([&] { log.push_back("done"); },
                             [&](Device& d) { log.push_back("after " + d.name()); },
                             [&] {
                               log.push_back("outputs off");
                               for (FakeDriver* driver : drivers_)
                                 outputs_at_off.push_back(driver->output_on());
                               states_at_off = States();
                             });
  EXPECT_THAT(log, ElementsAre("outputs off", "after devices/0", "after devices/1",
                               "after devices/2", "done"))
      << "idle devices whose drivers never block stop on the calling thread";
  EXPECT_THAT(outputs_at_off, Each(false));
  EXPECT_THAT(states_at_off, Each(v1::DEVICE_STATE_RUNNING)) << "bookkeeping comes after";
  EXPECT_THAT(States(), Each(v1::DEVICE_STATE_ESTOPPED));
  executor.RunUntilIdle();  // the pool's offers to help find every stop finished
  EXPECT_EQ(log.size(), 5u) << "no stop is finished twice";
}

TEST_F(FleetStopTest, ADeviceBusyWithATaskStopsInItsUrgentLaneAndOutputsOffWaitsForIt) {
  ManualExecutor executor;
  StartFleet(executor, 3);
  executor.RunUntilIdle();
  std::vector<std::string> log;
  std::vector<std::string> queued;
  manager_->Post(2, [&](Device& d) { queued.push_back(v1::DeviceState_Name(d.state())); });
  // Device 1 is running a task (inline, on this thread) when the stop comes.
  manager_->Dispatch(1, [&](Device&) {
    manager_->EmergencyStopAll([&] { log.push_back("done"); }, nullptr,
                               [&] { log.push_back("outputs off"); });
  });
  EXPECT_TRUE(log.empty()) << "device 1's output is not off yet";
  EXPECT_THAT(States(), ElementsAre(v1::DEVICE_STATE_ESTOPPED, v1::DEVICE_STATE_RUNNING,
                                    v1::DEVICE_STATE_ESTOPPED));
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("outputs off", "done"));
  EXPECT_THAT(States(), Each(v1::DEVICE_STATE_ESTOPPED));
  EXPECT_THAT(queued, ElementsAre("DEVICE_STATE_ESTOPPED"))
      << "work queued before the stop runs after it";
}

TEST_F(FleetStopTest, AnEmptyFleetCallsBothCallbacksAtOnce) {
  ManualExecutor executor;
  StartFleet(executor, 0);
  std::vector<std::string> log;
  manager_->EmergencyStopAll([&] { log.push_back("done"); }, nullptr,
                             [&] { log.push_back("outputs off"); });
  EXPECT_THAT(log, ElementsAre("outputs off", "done"));
}

// Stops racing ticks and commands on a real pool: each stop calls outputs_off once and then
// done once, and every device it finished was latched with its output off.
TEST_F(FleetStopTest, StopsRacingTicksAndCommandsOnAPoolEachFinishOnce) {
  auto executor = std::make_unique<ThreadPoolExecutor>(2);
  StartFleet(*executor, 8);
  manager_->Wait([this](Done done) { manager_->TickAll(std::move(done)); });
  std::atomic<bool> stop_racing{false};
  std::thread ticker([&] {
    while (!stop_racing.load()) {
      manager_->Wait([this](Done done) { manager_->TickAll(std::move(done)); });
    }
  });
  std::thread commands([&] {
    for (uint32_t i = 0; !stop_racing.load(); i = (i + 1) % manager_->size()) {
      absl::Notification ran;
      manager_->Dispatch(i, [&ran](Device& d) {
        (void)d.Configure("no lease", DeviceFixture::PenSettings(1.0, 100), false);
        ran.Notify();
      });
      ran.WaitForNotification();
    }
  });
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> outputs_off{0}, done{0}, not_safe{0};
    std::atomic<bool> done_before_outputs_off{false};
    absl::Notification finished;
    manager_->EmergencyStopAll(
        [&] {
          if (outputs_off.load() != 1) done_before_outputs_off = true;
          done.fetch_add(1);
          finished.Notify();
        },
        [&](Device& d) {
          if (d.state() != v1::DEVICE_STATE_ESTOPPED || d.last_reading().output_on) {
            not_safe.fetch_add(1);
          }
        },
        [&] { outputs_off.fetch_add(1); });
    finished.WaitForNotification();
    EXPECT_EQ(outputs_off.load(), 1) << "round " << round;
    EXPECT_EQ(done.load(), 1) << "round " << round;
    EXPECT_FALSE(done_before_outputs_off.load()) << "round " << round;
    EXPECT_EQ(not_safe.load(), 0) << "round " << round;
  }
  stop_racing = true;
  ticker.join();
  commands.join();
  executor.reset();  // runs every queued task and joins before the strands go away
}

}  // namespace
}  // namespace derma::testing
