// Dose truth in the core: a device whose delivered output falls short of its trajectory for the
// regulation grace time faults with the output off (the run ends FAULT with the ledger of what
// was delivered); shorter shortfalls, and grace times restarted by setting changes, do not; a
// run's ledger carries the programmed dose beside the delivered one, and a run whose steps
// finish outside the dose tolerance ends DOSE_OUT_OF_TOLERANCE. FakeDriver follows its
// setpoints at once (no ramp), so programmed figures are rate × time.
#include <algorithm>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;

v1::RunStep Step(const v1::Settings& settings, double seconds) {
  v1::RunStep step;
  *step.mutable_settings() = settings;
  step.set_duration_s(seconds);
  return step;
}

class RegulationTest : public DeviceFixture {
 protected:
  v1::Run RunNamed(const std::string& name) {
    RunPtr run = runs_.Get(name);
    EXPECT_NE(run, nullptr) << name;
    return run == nullptr ? v1::Run() : *run;
  }
  std::string StartRun(std::vector<v1::RunStep> steps) {
    absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), steps, "");
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? (*run)->name() : "";
  }
};

TEST_F(RegulationTest, StimulatorShortOfItsCurrentForTheGraceTimeFaultsWithOutputOff) {
  MakeDevice(FakeStimulatorInfo());
  const std::string run = StartRun({Step(StimSettings(500), 10)});
  Run(absl::Seconds(1));
  driver_->set_delivery_fraction(0.12);  // ≈ 59 µA of 500 µA, as at 200 kΩ behind 12 V
  Run(absl::Milliseconds(190));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING) << "still within the 0.2 s grace";
  Run(absl::Milliseconds(20));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->view().Read().active_fault().kind(), v1::FAULT_KIND_IMPEDANCE_SPIKE);
  EXPECT_THAT(device_->view().Read().active_fault().message(), HasSubstr("of 500 µA programmed"));
  const v1::Run ended = RunNamed(run);
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_FAULT);
  // Faulted exactly when the grace time ended (1.2 s of output on): 500 µC + 0.2 s × 60 µA.
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 1.2);
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), 500 + 0.2 * 60, 1e-6);
  EXPECT_NEAR(ended.ledger().charge_programmed_uc(), 600, 1e-6);
}

TEST_F(RegulationTest, PenShortOfItsStrokeRateFaultsMotorUnderspeed) {
  MakeDevice(FakePenInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_delivery_fraction(0.6);
  Run(absl::Milliseconds(250));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(driver_->output_on());
  const v1::Fault fault = device_->view().Read().active_fault();
  EXPECT_EQ(fault.kind(), v1::FAULT_KIND_MOTOR_UNDERSPEED);
  EXPECT_THAT(fault.message(), HasSubstr("60.0 Hz, programmed 100.0 Hz"));
}

TEST_F(RegulationTest, AShortfallShorterThanTheGraceTimeDoesNotFault) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  for (int i = 0; i < 5; ++i) {
    driver_->set_delivery_fraction(0.2);
    Run(absl::Milliseconds(150));
    driver_->set_delivery_fraction(1);
    Run(absl::Milliseconds(20));
  }
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
}

TEST_F(RegulationTest, ASettingChangeRestartsTheGraceTime) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_delivery_fraction(0.2);
  Run(absl::Milliseconds(150));
  ASSERT_TRUE(device_->Configure(lease_, StimSettings(400), false).ok());
  Run(absl::Milliseconds(150));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING) << "0.3 s short, but 0.15 s per setting";
  Run(absl::Milliseconds(60));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(RegulationTest, ResumeRestartsTheGraceTime) {
  MakeDevice(FakePenInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_delivery_fraction(0.2);
  Run(absl::Milliseconds(150));
  ASSERT_TRUE(device_->Pause(lease_).ok());
  Run(absl::Seconds(1));
  ASSERT_TRUE(device_->Resume(lease_).ok());
  Run(absl::Milliseconds(150));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
}

TEST_F(RegulationTest, FaultIsJudgedAtTheEndOfTheGraceTimeEvenWithoutATick) {
  MakeDevice(FakeStimulatorInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Milliseconds(100));
  driver_->set_delivery_fraction(0);
  Run(absl::Milliseconds(10));  // the shortfall is seen from here (t = 0.1 s)
  Run(absl::Seconds(5), /*tick=*/absl::Seconds(5));
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  const v1::Fault fault = device_->view().Read().active_fault();
  EXPECT_EQ(fault.detect_time().seconds() * 1000000 + fault.detect_time().nanos() / 1000,
            absl::ToUnixMicros(clock_.Now() - absl::Seconds(5) - absl::Milliseconds(10) +
                               absl::Milliseconds(200)))
      << "detected 0.2 s after the shortfall began, not at the next tick 5 s later";
}

TEST_F(RegulationTest, ResetFaultAfterAShortfallReturnsToIdle) {
  MakeDevice(FakePenInfo());
  DriveTo(v1::DEVICE_STATE_RUNNING);
  driver_->set_delivery_fraction(0.5);
  Run(absl::Milliseconds(300));
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  driver_->set_delivery_fraction(1);
  EXPECT_TRUE(device_->ResetFault(lease_).ok());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(RegulationTest, LedgerCarriesTheProgrammedDoseBesideTheDelivered) {
  MakeDevice(FakePenInfo());
  const std::string run =
      StartRun({Step(PenSettings(1.0, 100), 2), Step(PenSettings(1.0, 150), 3)});
  Run(absl::Seconds(6));
  const v1::Run ended = RunNamed(run);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(ended.ledger().strokes_programmed(), 650);
  EXPECT_EQ(ended.ledger().strokes_delivered(), 650u);
  EXPECT_EQ(ended.ledger().charge_programmed_uc(), 0);
}

TEST_F(RegulationTest, ProgrammedDoseCountsOnlyTheOutputOnTimeTheRunHad) {
  MakeDevice(FakeStimulatorInfo());
  const std::string run = StartRun({Step(StimSettings(200), 10)});
  Run(absl::Seconds(2));
  ASSERT_TRUE(device_->Pause(lease_).ok());
  Run(absl::Seconds(3));
  device_->Stop();
  const v1::Run ended = RunNamed(run);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_STOPPED);
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 2);
  EXPECT_NEAR(ended.ledger().charge_programmed_uc(), 400, 1e-9);
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), 400, 1e-9);
}

TEST_F(RegulationTest, StepsFinishedOutsideTheDoseToleranceEndDoseOutOfTolerance) {
  MakeDevice(FakeStimulatorInfo());
  const std::string run = StartRun({Step(StimSettings(500), 2)});
  driver_->set_delivery_fraction(0.95);  // within the 10 % regulation, outside the 2 % dose
  Run(absl::Seconds(3));
  const v1::Run ended = RunNamed(run);
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_DOSE_OUT_OF_TOLERANCE);
  EXPECT_THAT(ended.end_message(), HasSubstr("950.00 µC of 1000.00 µC programmed"));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(RegulationTest, StepsFinishedWithinTheDoseToleranceComplete) {
  MakeDevice(FakeStimulatorInfo());
  const std::string run = StartRun({Step(StimSettings(500), 2)});
  driver_->set_delivery_fraction(0.99);
  Run(absl::Seconds(3));
  EXPECT_EQ(RunNamed(run).end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_EQ(RunNamed(run).state(), v1::RUN_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace derma::testing

namespace derma::testing {
namespace {

// A clock another thread keeps moving: every reading is 10 ms after the one before.
class MovingClock : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_ += absl::Milliseconds(10);
  }
  bool IsVirtual() const override { return true; }

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1767225600);
};

// Found by the e-stop storm under ASan: EmergencyStop switched the output off at one reading of
// the clock and accounted output-on time up to a later one, so the ledger counted on-time in
// which nothing was delivered.
TEST(EmergencyStopClockTest, OutputOnTimeEndsWhereTheOutputWentOff) {
  MovingClock clock;
  TelemetryFanout fanout;
  RunRegistry runs;
  Device device(0, "stim", std::make_unique<FakeDriver>(FakeStimulatorInfo()),
                DeviceContext{clock, fanout, runs});
  device.Initialize();
  absl::StatusOr<LeaseGrant> lease = device.AcquireLease("t", absl::Seconds(60));
  ASSERT_TRUE(lease.ok()) << lease.status();
  v1::RunStep step;
  *step.mutable_settings() = DeviceFixture::StimSettings(300);
  step.set_duration_s(10);
  absl::StatusOr<RunPtr> run = device.StartRun(lease->lease_id, {step}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  for (int i = 0; i < 5; ++i) device.Tick();
  device.EmergencyStop();
  const v1::DoseLedger ledger = runs.Get((*run)->name())->ledger();
  ASSERT_GT(ledger.output_on_s(), 0);
  EXPECT_NEAR(ledger.charge_delivered_uc(), 300 * ledger.output_on_s(), 1e-6);
}

}  // namespace
}  // namespace derma::testing

namespace derma::testing {
namespace {

// An instrument behind a link takes the output-on command when the request reaches it, after
// the reading the command started from: the programmed dose starts there (found by the
// 16-device RTU bench, where the command latency made ramps look short and faulted them).
TEST(ActsWhenCalledTest, TheProgrammedDoseStartsWhenTheOutputOnCommandReturned) {
  MovingClock clock;  // every reading 10 ms after the one before
  TelemetryFanout fanout;
  RunRegistry runs;
  DriverInfo info = FakeStimulatorInfo();
  info.acts_when_called = true;
  Device device(0, "stim", std::make_unique<FakeDriver>(info), DeviceContext{clock, fanout, runs});
  device.Initialize();
  absl::StatusOr<LeaseGrant> lease = device.AcquireLease("t", absl::Seconds(60));
  ASSERT_TRUE(lease.ok()) << lease.status();
  v1::RunStep step;
  *step.mutable_settings() = DeviceFixture::StimSettings(300);
  step.set_duration_s(10);
  absl::StatusOr<RunPtr> run = device.StartRun(lease->lease_id, {step}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  for (int i = 0; i < 5; ++i) device.Tick();
  device.Stop();
  const v1::DoseLedger ledger = runs.Get((*run)->name())->ledger();
  ASSERT_GT(ledger.output_on_s(), 0.02);
  // One clock reading (10 ms) passed between the reading StartRun began from and the moment
  // SetOutput(true) returned; nothing is programmed for it.
  EXPECT_NEAR(ledger.charge_programmed_uc(), 300 * (ledger.output_on_s() - 0.01), 1e-6);
}

}  // namespace
}  // namespace derma::testing

namespace derma::testing {
namespace {

// An instrument behind a link, on a wall clock the test moves, whose every frame takes `lag`
// on the line: a write (Apply, SetOutput, ForceOutputOff) acts when its request has arrived
// and its short reply is back at once; a poll samples the counters when it arrives and its long
// reply takes `lag` to come back. A Read at the `now` of the previous one is answered without
// a request, as the Driver contract allows.
class LinkedInstrument : public Driver {
 public:
  LinkedInstrument(DriverInfo info, VirtualClock& wall, absl::Duration lag)
      : fake_(std::move(info)), wall_(wall), lag_(lag) {
    info_ = fake_.Info();
    info_.acts_when_called = true;
  }
  const DriverInfo& Info() const override { return info_; }
  const DeviceDescription* Description() const override { return fake_.Description(); }
  absl::Status Connect(absl::Time) override { return fake_.Connect(Write()); }
  absl::Status Apply(const v1::Settings& settings, absl::Time) override {
    return fake_.Apply(settings, Write());
  }
  absl::Status SetOutput(bool on, absl::Time) override { return fake_.SetOutput(on, Write()); }
  bool ForceOutputOff(absl::Time) override {
    last_.output_on = false;
    return fake_.ForceOutputOff(Write());
  }
  absl::StatusOr<DriverReading> Read(absl::Time now) override {
    if (read_once_ && now == last_read_) return last_;
    read_once_ = true;
    last_read_ = now;
    const absl::Time taken = wall_.Now();
    last_ = *fake_.Read(taken);
    last_.taken_at = taken;
    wall_.Advance(lag_);
    return last_;
  }

 private:
  absl::Time Write() { return wall_.Advance(lag_); }

  FakeDriver fake_;
  DriverInfo info_;
  VirtualClock& wall_;
  const absl::Duration lag_;
  bool read_once_ = false;
  absl::Time last_read_;
  DriverReading last_;
};

// Found by the Modbus end-to-end run on a loaded machine: a step deadline handled 20 ms late
// read the instrument's counters then, but counted the programmed dose only up to the deadline,
// so a run that delivered exactly what its steps asked for ended DOSE_OUT_OF_TOLERANCE.
TEST(ActsWhenCalledTest, DeadlinesHandledLateCountTheProgrammedDoseUpToTheReading) {
  VirtualClock wall;
  TelemetryFanout fanout;
  RunRegistry runs;
  Device device(
      0, "stim",
      std::make_unique<LinkedInstrument>(FakeStimulatorInfo(), wall, absl::Milliseconds(15)),
      DeviceContext{wall, fanout, runs});
  device.Initialize();
  absl::StatusOr<LeaseGrant> lease = device.AcquireLease("t", absl::Seconds(60));
  ASSERT_TRUE(lease.ok()) << lease.status();
  absl::StatusOr<RunPtr> started = device.StartRun(
      lease->lease_id,
      {Step(DeviceFixture::StimSettings(100), 0.6), Step(DeviceFixture::StimSettings(200), 0.6)},
      "");
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string name = (*started)->name();
  // Ticks 40 ms apart (each read adds its 15 ms): every step ends between two ticks and is
  // handled up to 55 ms after its deadline.
  for (int i = 0; i < 100 && !RunEnded(*runs.Get(name)); ++i) {
    wall.Advance(absl::Milliseconds(40));
    device.Tick();
  }
  const v1::Run run = *runs.Get(name);
  ASSERT_EQ(run.end_reason(), v1::RUN_END_REASON_COMPLETED) << run.DebugString();
  const v1::DoseLedger& ledger = run.ledger();
  // Delivered and programmed cover the same instants: from the output going on, through the
  // step change, to the last reading.
  EXPECT_NEAR(ledger.charge_delivered_uc(), ledger.charge_programmed_uc(), 1e-6)
      << ledger.DebugString();
  // The output was on for most of the 1.2 s (it went on 45 ms after StartRun's reading).
  EXPECT_GT(ledger.charge_delivered_uc(), 150) << ledger.DebugString();
}

}  // namespace
}  // namespace derma::testing
