// Faults: every fault kind the simulator can raise drives the device to its safe state, output
// off first; link loss, contact loss, fault reset and the start interlocks.
#include <algorithm>

#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

// Records, for every event, whether the driver's output was on at the moment it was published.
struct ObservedEvent {
  v1::DeviceEventType type;
  v1::FaultKind fault;
  bool output_on;
};

class FaultFixture : public DeviceFixture {
 protected:
  void WatchOutputAtEvents() {
    probe_ = fanout_.Subscribe({});
    probe_->SetWakeup([this] {
      for (const TelemetryEntry& e : probe_->Drain(1 << 20).entries) {
        if (e.event != nullptr) {
          observed_.push_back({e.event->type(), e.event->fault().kind(), driver_->output_on()});
        }
      }
    });
  }
  absl::StatusOr<RunPtr> StartOneStepRun(double seconds) {
    v1::RunStep step;
    step.set_duration_s(seconds);
    return device_->StartRun(lease_.empty() ? Lease() : lease_, {step}, "");
  }
  // Index of the first event of `type` (optionally a STATE_CHANGED to `to`), or -1.
  static int IndexOf(const std::vector<v1::DeviceEvent>& events, v1::DeviceEventType type,
                     v1::DeviceState to = v1::DEVICE_STATE_UNSPECIFIED) {
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].type() == type && (to == 0 || events[i].to_state() == to)) return i;
    }
    return -1;
  }

  std::shared_ptr<TelemetrySubscription> probe_;
  std::vector<ObservedEvent> observed_;
};

struct LatchingFault {
  v1::FaultKind kind;
  bool pen;
};
void PrintTo(const LatchingFault& f, std::ostream* os) { *os << v1::FaultKind_Name(f.kind); }

class LatchingFaultTest : public FaultFixture, public ::testing::WithParamInterface<LatchingFault> {
 protected:
  void SetUp() override { MakeDevice(GetParam().pen ? FakePenInfo() : FakeStimulatorInfo()); }
  void Raise() {
    driver_->set_faults(FaultBit(GetParam().kind));
    device_->Tick();
  }
};

TEST_P(LatchingFaultTest, WhileRunningForcesOutputOffAndLatchesFault) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  const int forced_before = driver_->force_off_count();
  Raise();
  EXPECT_GT(driver_->force_off_count(), forced_before);
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  EXPECT_EQ(device_->view().Read().active_fault().kind(), GetParam().kind);
}

TEST_P(LatchingFaultTest, ReportsFaultRaisedThenStateChanged) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Events();
  Raise();
  const std::vector<v1::DeviceEvent> events = Events();
  const int raised = IndexOf(events, v1::DEVICE_EVENT_TYPE_FAULT_RAISED);
  const int changed = IndexOf(events, v1::DEVICE_EVENT_TYPE_STATE_CHANGED, v1::DEVICE_STATE_FAULT);
  ASSERT_GE(raised, 0);
  ASSERT_GE(changed, 0);
  EXPECT_LT(raised, changed);
  EXPECT_EQ(events[raised].fault().kind(), GetParam().kind);
  EXPECT_EQ(events[changed].fault().kind(), GetParam().kind);
}

TEST_P(LatchingFaultTest, OutputIsAlreadyOffWhenFaultIsReported) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  WatchOutputAtEvents();
  Raise();
  ASSERT_FALSE(observed_.empty());
  for (const ObservedEvent& e : observed_) {
    EXPECT_FALSE(e.output_on) << "event " << v1::DeviceEventType_Name(e.type)
                              << " published while the output was still on";
  }
}

TEST_P(LatchingFaultTest, EndsActiveRunWithFault) {
  absl::StatusOr<RunPtr> run = StartOneStepRun(10);
  ASSERT_TRUE(run.ok()) << run.status();
  Run(absl::Seconds(1));
  Raise();
  RunPtr ended = runs_.Get((*run)->name());
  EXPECT_EQ(ended->state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended->end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_FALSE(driver_->output_on());
}

INSTANTIATE_TEST_SUITE_P(EverySimulatorFault, LatchingFaultTest,
                         ::testing::Values(LatchingFault{v1::FAULT_KIND_MOTOR_STALL, true},
                                           LatchingFault{v1::FAULT_KIND_OVER_TEMPERATURE, true},
                                           LatchingFault{v1::FAULT_KIND_CARTRIDGE_JAM, true},
                                           LatchingFault{v1::FAULT_KIND_IMPEDANCE_SPIKE, false},
                                           LatchingFault{v1::FAULT_KIND_OVERCURRENT, false}),
                         [](const ::testing::TestParamInfo<LatchingFault>& info) {
                           return v1::FaultKind_Name(info.param.kind);
                         });

class FaultTest : public FaultFixture {};

TEST_F(FaultTest, FaultWhileIdleLatchesFault) {
  MakeDevice();
  driver_->set_faults(FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE));
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(FaultTest, ContactLossWhileRunningPausesWithOutputOff) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_contact(false);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_PAUSED);
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->view().Read().active_fault().kind(), v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
}

TEST_F(FaultTest, OutputIsAlreadyOffWhenContactLossIsReported) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  WatchOutputAtEvents();
  driver_->set_contact(false);
  device_->Tick();
  ASSERT_FALSE(observed_.empty());
  for (const ObservedEvent& e : observed_) {
    EXPECT_FALSE(e.output_on) << v1::DeviceEventType_Name(e.type) << " while output on";
  }
}

TEST_F(FaultTest, ResumeWithoutContactIsRejected) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_contact(false);
  device_->Tick();
  absl::Status status = device_->Resume(lease_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_NO_ELECTRODE_CONTACT));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_PAUSED);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(FaultTest, ResumeAfterContactReturnsRunsAgain) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_contact(false);
  device_->Tick();
  driver_->set_contact(true);
  device_->Tick();
  ASSERT_TRUE(device_->Resume(lease_).ok());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_TRUE(driver_->output_on());
  EXPECT_FALSE(device_->view().Read().has_active_fault());
}

TEST_F(FaultTest, LinkDropGoesOfflineWithOutputOffAndEndsRunLinkLost) {
  MakeDevice();
  absl::StatusOr<RunPtr> run = StartOneStepRun(10);
  ASSERT_TRUE(run.ok()) << run.status();
  const int forced_before = driver_->force_off_count();
  driver_->set_link_up(false);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_GT(driver_->force_off_count(), forced_before);
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(runs_.Get((*run)->name())->end_reason(), v1::RUN_END_REASON_LINK_LOST);
  EXPECT_EQ(device_->view().Read().active_fault().kind(), v1::FAULT_KIND_LINK_DROP);
}

TEST_F(FaultTest, CommandsWhileOfflineAreDeviceOffline) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_OFFLINE);
  absl::Status status = device_->Start(lease_, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_DEVICE_OFFLINE));
}

TEST_F(FaultTest, LinkRestoredReturnsToIdle) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_OFFLINE);
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device_->view().Read().has_active_fault());
}

TEST_F(FaultTest, EmergencyStopWhileOfflineLatchesOnReconnect) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_OFFLINE);
  device_->EmergencyStop();
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(FaultTest, FaultLatchSurvivesLinkDrop) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_FAULT);
  driver_->set_link_up(false);
  device_->Tick();
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(FaultTest, ResetFaultWhileConditionPresentIsRejected) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_FAULT);
  absl::Status status = device_->ResetFault(lease_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  EXPECT_EQ(MetadataOf(status)["fault"], "FAULT_KIND_OVER_TEMPERATURE");
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(FaultTest, ResetFaultAfterConditionClearsReturnsToIdle) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_FAULT);
  driver_->set_faults(0);
  ASSERT_TRUE(device_->ResetFault(lease_).ok());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device_->view().Read().has_active_fault());
}

TEST_F(FaultTest, DriverReadFailureLatchesFault) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_fail_reads(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(FaultTest, PersistentReadFailureIsReportedOnce) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Events();
  driver_->set_fail_reads(true);
  Run(absl::Seconds(1));  // 100 ticks
  const std::vector<v1::DeviceEvent> events = Events();
  EXPECT_EQ(std::count_if(events.begin(), events.end(),
                          [](const v1::DeviceEvent& e) {
                            return e.type() == v1::DEVICE_EVENT_TYPE_FAULT_RAISED;
                          }),
            1)
      << "one failure condition must raise one fault, not one per tick";
}

TEST_F(FaultTest, DriverApplyFailureIsDriverErrorAndLatchesFault) {
  MakeDevice();
  driver_->set_fail_next_apply(true);
  absl::Status status = device_->Configure(Lease(), PenSettings(1.0, 100), false).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_DRIVER_ERROR));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(FaultTest, StartOnExpiredCartridgeIsRejected) {
  MakeDevice();
  v1::Cartridge worn;
  worn.set_needle_length_mm(2.5);
  worn.set_strokes_rated(1000);
  worn.set_strokes_used(1000);
  driver_->set_cartridge(worn);
  absl::Status status = device_->Start(Lease(), "");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_CARTRIDGE_EXPIRED));
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(FaultTest, StartOnStimulatorWithoutContactIsRejected) {
  MakeDevice(FakeStimulatorInfo());
  driver_->set_contact(false);
  absl::Status status = device_->Start(Lease(), "");
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_NO_ELECTRODE_CONTACT));
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

}  // namespace
}  // namespace derma::testing
