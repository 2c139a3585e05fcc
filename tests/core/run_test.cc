// The run engine: step progress and switching, exact dose ledgers, pause/resume, cancel, stop,
// program validation, session limit and request_id idempotency.
#include <algorithm>

#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Field;
using ::testing::UnorderedElementsAre;

v1::RunStep PenStep(double depth, double rate, double seconds) {
  v1::RunStep step;
  *step.mutable_settings() = DeviceFixture::PenSettings(depth, rate);
  step.set_duration_s(seconds);
  return step;
}

class RunTest : public DeviceFixture {
 protected:
  void SetUp() override {
    MakeDevice();
    start_ = clock_.Now();
  }
  // The two-step pen program: 1.0 mm 100 Hz for 2 s, then 1.5 mm 150 Hz for 3 s.
  std::string StartTwoStepRun() {
    absl::StatusOr<RunPtr> run =
        device_->StartRun(Lease(), {PenStep(1.0, 100, 2), PenStep(1.5, 150, 3)}, "");
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? (*run)->name() : "";
  }
  v1::Run Get(const std::string& name) {
    RunPtr run = runs_.Get(name);
    EXPECT_NE(run, nullptr) << name;
    return run == nullptr ? v1::Run() : *run;
  }
  int OutputSwitchesOn() {
    return std::count_if(driver_->output_log().begin(), driver_->output_log().end(),
                         [](const auto& entry) { return entry.second; });
  }

  absl::Time start_;
};

absl::Time EndTime(const v1::Run& run) {
  return absl::FromUnixSeconds(run.end_time().seconds()) +
         absl::Nanoseconds(run.end_time().nanos());
}

TEST_F(RunTest, ProgressReportsCurrentStepAndStepElapsed) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  EXPECT_EQ(Get(name).current_step(), 0u);
  EXPECT_EQ(Get(name).step_elapsed_s(), 1.0);
  Run(absl::Milliseconds(1500));
  EXPECT_EQ(Get(name).current_step(), 1u);
  EXPECT_EQ(Get(name).step_elapsed_s(), 0.5);
  EXPECT_EQ(Get(name).state(), v1::RUN_STATE_RUNNING);
}

TEST_F(RunTest, StepSwitchAppliesNextSettingsExactlyAtStepEnd) {
  StartTwoStepRun();
  Run(absl::Seconds(3));
  auto second = std::find_if(
      driver_->apply_log().begin(), driver_->apply_log().end(),
      [](const auto& entry) { return entry.second.microneedling().needle_depth_mm() == 1.5; });
  ASSERT_NE(second, driver_->apply_log().end());
  EXPECT_EQ(second->first, start_ + absl::Seconds(2));
  EXPECT_EQ(second->second.microneedling().stroke_rate_hz(), 150);
}

TEST_F(RunTest, CompletesExactlyAtTotalDuration) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(6));
  const v1::Run run = Get(name);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_EQ(EndTime(run), start_ + absl::Seconds(5));
  EXPECT_EQ(driver_->output_log().back(), std::make_pair(start_ + absl::Seconds(5), false));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_TRUE(device_->view().Read().active_run().empty());
}

TEST_F(RunTest, PenLedgerIsExact) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(6));
  const v1::Run run = Get(name);
  EXPECT_EQ(run.ledger().strokes_delivered(), 100u * 2 + 150u * 3);
  EXPECT_EQ(run.ledger().output_on_s(), 5.0);
}

TEST_F(RunTest, StimulatorChargeLedgerIsExact) {
  MakeDevice(FakeStimulatorInfo());
  v1::RunStep step;
  *step.mutable_settings() = StimSettings(500);
  step.mutable_settings()->mutable_microcurrent()->set_ramp_s(0);
  step.set_duration_s(4);
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), {step}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  Run(absl::Seconds(5));
  const v1::Run ended = Get((*run)->name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(ended.ledger().charge_delivered_uc(), 2000.0);
  EXPECT_EQ(ended.ledger().output_on_s(), 4.0);
}

TEST_F(RunTest, LaterStepKeepsUnsetFieldsOfPreviousStep) {
  v1::RunStep rate_only;
  rate_only.mutable_settings()->mutable_microneedling()->set_stroke_rate_hz(60);
  rate_only.set_duration_s(1);
  ASSERT_TRUE(device_->StartRun(Lease(), {PenStep(1.2, 100, 1), rate_only}, "").ok());
  Run(absl::Milliseconds(1500));
  EXPECT_EQ(driver_->applied().microneedling().needle_depth_mm(), 1.2);
  EXPECT_EQ(driver_->applied().microneedling().stroke_rate_hz(), 60);
}

TEST_F(RunTest, PauseHoldsStepTimeAndReportsPaused) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  ASSERT_TRUE(device_->Pause(lease_).ok());
  Run(absl::Seconds(1));
  const v1::Run run = Get(name);
  EXPECT_EQ(run.state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(run.step_elapsed_s(), 1.0);
  EXPECT_EQ(run.ledger().output_on_s(), 1.0);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(RunTest, ResumeContinuesAndLedgerExcludesPausedTime) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  ASSERT_TRUE(device_->Pause(lease_).ok());
  Run(absl::Seconds(1));
  ASSERT_TRUE(device_->Resume(lease_).ok());
  Run(absl::Seconds(5));
  const v1::Run run = Get(name);
  EXPECT_EQ(run.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_EQ(EndTime(run), start_ + absl::Seconds(6));
  EXPECT_EQ(run.ledger().output_on_s(), 5.0);
  EXPECT_EQ(run.ledger().strokes_delivered(), 650u);
}

TEST_F(RunTest, CancelRunEndsItEarlyAndIdles) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  absl::StatusOr<RunPtr> cancelled = device_->CancelRun(lease_, name);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ((*cancelled)->state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ((*cancelled)->end_reason(), v1::RUN_END_REASON_CANCELLED);
  EXPECT_FALSE(driver_->output_on());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(RunTest, CancelUnknownRunIsRunNotFound) {
  StartTwoStepRun();
  absl::StatusOr<RunPtr> cancelled = device_->CancelRun(lease_, "devices/dev-1/runs/nope");
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cancelled.status(), HasReason(v1::ERROR_REASON_RUN_NOT_FOUND));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
}

TEST_F(RunTest, CancelEndedRunIsRunEnded) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(6));
  absl::StatusOr<RunPtr> cancelled = device_->CancelRun(lease_, name);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cancelled.status(), HasReason(v1::ERROR_REASON_RUN_ENDED));
}

TEST_F(RunTest, StopEndsRunStopped) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  device_->Stop();
  EXPECT_EQ(Get(name).end_reason(), v1::RUN_END_REASON_STOPPED);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(RunTest, EmergencyStopEndsRunEmergencyStop) {
  const std::string name = StartTwoStepRun();
  Run(absl::Seconds(1));
  device_->EmergencyStop();
  EXPECT_EQ(Get(name).end_reason(), v1::RUN_END_REASON_EMERGENCY_STOP);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(RunTest, BadProgramReportsEveryBadStepAndStartsNothing) {
  absl::StatusOr<RunPtr> run =
      device_->StartRun(Lease(), {PenStep(1.0, 100, 0), PenStep(3.0, 100, 1)}, "");
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationsOf(run.status()),
              UnorderedElementsAre(Field(&FieldViolation::field, "steps[0].duration_s"),
                                   Field(&FieldViolation::field,
                                         "steps[1].settings.microneedling.needle_depth_mm")));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_TRUE(driver_->output_log().empty());
  EXPECT_TRUE(runs_.List("", 0, 10).empty());
}

TEST_F(RunTest, EmptyProgramIsInvalidSteps) {
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), {}, "");
  EXPECT_THAT(run.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(run.status()),
              UnorderedElementsAre(Field(&FieldViolation::field, "steps")));
}

TEST_F(RunTest, ConfigureDuringRunIsRunActive) {
  const std::string name = StartTwoStepRun();
  absl::Status status = device_->Configure(lease_, PenSettings(2.0, 100), false).status();
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_RUN_ACTIVE));
  EXPECT_EQ(MetadataOf(status)["run"], name);
  EXPECT_EQ(driver_->applied().microneedling().needle_depth_mm(), 1.0);
}

TEST_F(RunTest, StartRunDuringRunIsRunActive) {
  StartTwoStepRun();
  absl::Status status = device_->StartRun(lease_, {PenStep(1.0, 100, 1)}, "").status();
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_RUN_ACTIVE))
      << "errors.proto: RUN_ACTIVE for Configure, Start or StartRun while a run owns the device";
}

TEST_F(RunTest, SessionLimitEndsRunAtExactlyTheLimit) {
  v1::RunStep step = PenStep(1.0, 100, 10);
  step.mutable_settings()->mutable_microneedling()->set_session_limit_s(3);
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), {step}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  Run(absl::Seconds(4));
  const v1::Run ended = Get((*run)->name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_SESSION_LIMIT);
  EXPECT_EQ(EndTime(ended), start_ + absl::Seconds(3));
  EXPECT_EQ(ended.ledger().output_on_s(), 3.0);
  EXPECT_EQ(driver_->output_log().back(), std::make_pair(start_ + absl::Seconds(3), false));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(RunTest, StartRunRetriedWithSameRequestIdStartsOnce) {
  const std::vector<v1::RunStep> program = {PenStep(1.0, 100, 10)};
  absl::StatusOr<RunPtr> first = device_->StartRun(Lease(), program, "req-1");
  absl::StatusOr<RunPtr> second = device_->StartRun(lease_, program, "req-1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->name(), (*first)->name());
  EXPECT_EQ(OutputSwitchesOn(), 1);
  EXPECT_EQ(runs_.List("", 0, 10).size(), 1u);
}

TEST_F(RunTest, RequestIdReusedWithDifferentProgramIsRejected) {
  ASSERT_TRUE(device_->StartRun(Lease(), {PenStep(1.0, 100, 10)}, "req-1").ok());
  absl::StatusOr<RunPtr> other = device_->StartRun(lease_, {PenStep(2.0, 100, 10)}, "req-1");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status(), HasReason(v1::ERROR_REASON_REQUEST_ID_REUSED));
}

TEST_F(RunTest, StartRetriedWithSameRequestIdSwitchesOutputOnce) {
  ASSERT_TRUE(device_->Start(Lease(), "req-1").ok());
  EXPECT_TRUE(device_->Start(lease_, "req-1").ok());
  EXPECT_EQ(OutputSwitchesOn(), 1);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
}

TEST_F(RunTest, StartRetriedAfterDeviceOfflineStartsOnceTheLinkIsBack) {
  Lease();
  driver_->set_link_up(false);
  device_->Tick();
  ASSERT_THAT(device_->Start(lease_, "req-1"), HasReason(v1::ERROR_REASON_DEVICE_OFFLINE));
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_TRUE(device_->Start(lease_, "req-1").ok())
      << "UNAVAILABLE is retryable: a retry with the same request_id must not replay it";
  EXPECT_EQ(OutputSwitchesOn(), 1);
}

TEST_F(RunTest, SessionLimitStopsPlainStartAtTheLimit) {
  v1::Settings limit;
  limit.mutable_microneedling()->set_session_limit_s(2);
  ASSERT_TRUE(device_->Configure(Lease(), limit, false).ok());
  ASSERT_TRUE(device_->Start(lease_, "").ok());
  Run(absl::Seconds(3));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_EQ(driver_->output_log().back(), std::make_pair(start_ + absl::Seconds(2), false));
}

TEST_F(RunTest, RunRecordsHolderAndRequestId) {
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), {PenStep(1.0, 100, 1)}, "req-9");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ((*run)->holder(), "tester");
  EXPECT_EQ((*run)->request_id(), "req-9");
  EXPECT_EQ((*run)->device(), "devices/dev-1");
  EXPECT_EQ((*run)->total_duration_s(), 1.0);
}

}  // namespace
}  // namespace derma::testing
