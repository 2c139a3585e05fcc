// How a safe state is reported: the dead-man switch turns the output off before any event
// reports the expiry; an IDLE device carries no fault after leaving an automatic pause; and a
// command (or an EmergencyStop) that finds a fault or a dropped link before the next tick
// publishes the output off at once instead of leaving the previous "on" sample in the view.
#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

class SafeStateReportingTest : public DeviceFixture {
 protected:
  // Records, for every event, whether the driver's output was on when it was published.
  void WatchOutputAtEvents() {
    probe_ = fanout_.Subscribe({});
    probe_->SetWakeup([this] {
      for (const TelemetryEntry& e : probe_->Drain(1 << 20).entries) {
        if (e.event != nullptr)
          output_at_events_.emplace_back(e.event->type(), driver_->output_on());
      }
    });
  }
  absl::StatusOr<RunPtr> StartRun(double seconds) {
    v1::RunStep step;
    step.set_duration_s(seconds);
    return device_->StartRun(lease_, {step}, "");
  }
  // A stimulator running a 60 s run, paused by electrode contact loss.
  RunPtr ContactPausedRun(absl::Duration ttl) {
    MakeDevice(FakeStimulatorInfo());
    Lease(ttl);
    absl::StatusOr<RunPtr> run = StartRun(60);
    EXPECT_TRUE(run.ok()) << run.status();
    driver_->set_contact(false);
    device_->Tick();
    EXPECT_EQ(device_->state(), v1::DEVICE_STATE_PAUSED);
    return run.ok() ? *run : nullptr;
  }

  std::shared_ptr<TelemetrySubscription> probe_;
  std::vector<std::pair<v1::DeviceEventType, bool>> output_at_events_;
};

TEST_F(SafeStateReportingTest, DeadManSwitchTurnsTheOutputOffBeforeTheExpiryIsReported) {
  MakeDevice();
  ASSERT_TRUE(device_->Start(Lease(absl::Seconds(2)), "").ok());
  WatchOutputAtEvents();
  Run(absl::Milliseconds(2010));
  ASSERT_FALSE(output_at_events_.empty());
  EXPECT_EQ(output_at_events_.front().first, v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED);
  for (const auto& [type, output_on] : output_at_events_) {
    EXPECT_FALSE(output_on) << v1::DeviceEventType_Name(type) << " published with the output on";
  }
}

TEST_F(SafeStateReportingTest, DeadManStopOfAContactPausedRunLeavesNoFaultOnTheIdleDevice) {
  ContactPausedRun(absl::Seconds(2));
  Run(absl::Milliseconds(2010));
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device_->view().Read().has_active_fault());
}

TEST_F(SafeStateReportingTest, CancellingAContactPausedRunLeavesNoFaultOnTheIdleDevice) {
  RunPtr run = ContactPausedRun(absl::Seconds(60));
  ASSERT_NE(run, nullptr);
  ASSERT_TRUE(device_->CancelRun(lease_, run->name()).ok());
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device_->view().Read().has_active_fault());
}

TEST_F(SafeStateReportingTest, CommandThatFindsAFaultPublishesTheOutputOff) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Milliseconds(50));
  ASSERT_TRUE(device_->view().latest_sample().output_on);
  driver_->set_faults(FaultBit(v1::FAULT_KIND_MOTOR_STALL));  // before the next tick
  EXPECT_THAT(device_->Configure(lease_, PenSettings(1.0, 100), false).status(),
              HasReason(v1::ERROR_REASON_FAULT_LATCHED));
  EXPECT_EQ(device_->view().state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device_->view().latest_sample().output_on);
}

TEST_F(SafeStateReportingTest, CommandThatFindsTheLinkDownPublishesTheOutputOff) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Milliseconds(50));
  driver_->set_link_up(false);
  EXPECT_TRUE(device_->RenewLease(lease_, absl::Seconds(10)).ok());
  EXPECT_EQ(device_->view().state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_FALSE(device_->view().latest_sample().output_on);
}

TEST_F(SafeStateReportingTest, EmergencyStopThatFindsTheLinkDownPublishesTheOutputOff) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Milliseconds(50));
  driver_->set_link_up(false);
  device_->EmergencyStop();
  EXPECT_EQ(device_->view().state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_FALSE(device_->view().latest_sample().output_on);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(SafeStateReportingTest, CommandThatFindsNothingNewPublishesNoExtraSample) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Milliseconds(50));
  const uint64_t before = device_->view().latest_sample().sequence;
  ASSERT_TRUE(device_->RenewLease(lease_, absl::Seconds(10)).ok());
  EXPECT_EQ(device_->view().latest_sample().sequence, before);
}

}  // namespace
}  // namespace derma::testing
