// sim/scenarios/pen_stall_and_over_temperature.textproto: pen-1's motor stalls 2 s into a run
// (freed at 3 s); after a reset and a second run the motor overheats at 5 s (heat source gone at
// 6 s). Safe state both times: motor off, run ended FAULT, FAULT latched; ResetFault only once
// the condition is gone (the stall freed, the motor cooled below limit − hysteresis).
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using grpc::StatusCode;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kRateHz = 100;
constexpr double kAccelHzPerS = 500;  // DP-100
constexpr double kTempLimitC = 60;    // DP-100
constexpr double kTempClearC = 55;    // limit − hysteresis

class PenScenarioTest : public ScenarioFixture {
 protected:
  // Leases pen-1, watches its telemetry, starts a 60 s run and loads the scenario at the same
  // device time.
  void SetUp() override {
    ScenarioFixture::SetUp();
    lease_ = Lease(kPen);
    Watch(kPen);
    strokes_before_ = Strokes();
    ASSERT_THAT(StartRun(kPen, lease_, {Step(60, PenSettings(0.5, kRateHz))}, &first_), IsOk());
    WatchRunProgress(first_.name());
    ASSERT_EQ(LoadScenarioFile("pen_stall_and_over_temperature.textproto"), 4u);
  }

  uint64_t Strokes() { return GetDevice(kPen).latest_sample().microneedling().strokes_total(); }

  // To t = 2.5 s: the motor stalled at 2 s.
  void PlayToStall() { Advance(2.5); }
  // To t = 5.5 s: stall freed at 3 s, reset and a second 60 s run at 3.5 s, overheated at 5 s.
  void PlayToOverTemperature() {
    PlayToStall();
    Advance(1.0);
    ASSERT_THAT(ResetFault(kPen, lease_), IsOk());
    strokes_before_second_ = Strokes();
    ASSERT_THAT(StartRun(kPen, lease_, {Step(60)}, &second_), IsOk());
    Advance(2.0);
  }

  std::string lease_;
  v1::Run first_;
  v1::Run second_;
  uint64_t strokes_before_ = 0;
  uint64_t strokes_before_second_ = 0;
};

TEST_F(PenScenarioTest, MotorStallLatchesFaultWithTheMotorOff) {
  PlayToStall();
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.latest_sample().microneedling().stroke_rate_hz(), 0);
  EXPECT_EQ(device.latest_sample().microneedling().motor_current_a(), 0);
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_MOTOR_STALL);
  EXPECT_TRUE(device.active_run().empty());
  EXPECT_EQ(Metric("derma_device_output_on", "pen-1"), 0);
}

TEST_F(PenScenarioTest, MotorStallEndsTheRunWithFaultAndItsStrokesCounted) {
  PlayToStall();
  const v1::Run ended = GetRun(first_.name());
  ExpectEndedEarly(ended, v1::RUN_END_REASON_FAULT, 2.0, 2.0);
  EXPECT_EQ(ended.ledger().strokes_delivered(), Strokes() - strokes_before_);
  EXPECT_NEAR(static_cast<double>(ended.ledger().strokes_delivered()),
              PenStrokes(kRateHz, kAccelHzPerS, 2.0), 1.0);
}

TEST_F(PenScenarioTest, RunLedgerNeverDecreasesUntilTheStall) {
  PlayToStall();
  ExpectLedgerMonotonic(ReadRunUpdates(), GetRun(first_.name()));
}

TEST_F(PenScenarioTest, ResetFaultIsRefusedWhileTheMotorIsStalled) {
  PlayToStall();
  EXPECT_THAT(ResetFault(kPen, lease_),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  Advance(1.0);
  ASSERT_THAT(ResetFault(kPen, lease_), IsOk());
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(GetDevice(kPen).has_active_fault());
}

TEST_F(PenScenarioTest, OverTemperatureLatchesFaultWithTheMotorOff) {
  PlayToOverTemperature();
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_GE(device.latest_sample().microneedling().motor_temperature_c(), kTempLimitC + 10);
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_OVER_TEMPERATURE);
  EXPECT_EQ(Metric("derma_device_output_on", "pen-1"), 0);
}

TEST_F(PenScenarioTest, OverTemperatureEndsTheSecondRunWithOnlyItsOwnStrokes) {
  PlayToOverTemperature();
  const v1::Run ended = GetRun(second_.name());
  ExpectEndedEarly(ended, v1::RUN_END_REASON_FAULT, 1.5, 1.5);
  EXPECT_EQ(ended.ledger().strokes_delivered(), Strokes() - strokes_before_second_);
  EXPECT_NEAR(static_cast<double>(ended.ledger().strokes_delivered()),
              PenStrokes(kRateHz, kAccelHzPerS, 1.5), 1.0);
}

TEST_F(PenScenarioTest, ResetFaultWaitsUntilTheMotorHasCooled) {
  PlayToOverTemperature();
  Advance(1.0);  // t = 6.5 s: the heat source went at 6 s, the motor is still hot
  EXPECT_GT(GetDevice(kPen).latest_sample().microneedling().motor_temperature_c(), kTempClearC);
  EXPECT_THAT(ResetFault(kPen, lease_),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  Advance(2.0);  // t = 8.5 s: cooled (DP-100 at rest: 70 → 55 °C in about 1.6 s)
  EXPECT_LT(GetDevice(kPen).latest_sample().microneedling().motor_temperature_c(), kTempClearC);
  ASSERT_THAT(ResetFault(kPen, lease_), IsOk());
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(PenScenarioTest, EventsAreStreamedInOrderWithoutGaps) {
  PlayToOverTemperature();
  Advance(3.0);
  ASSERT_THAT(ResetFault(kPen, lease_), IsOk());
  const DeviceTelemetry& d = Drain(kPen);
  EXPECT_THAT(d.errors, IsEmpty());
  EXPECT_THAT(
      Describe(d.events),
      ElementsAre("RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)", "FAULT_RAISED(MOTOR_STALL)",
                  "RUN_ENDED", "STATE_CHANGED(RUNNING->FAULT)", "FAULT_CLEARED(MOTOR_STALL)",
                  "STATE_CHANGED(FAULT->IDLE)", "RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)",
                  "FAULT_RAISED(OVER_TEMPERATURE)", "RUN_ENDED", "STATE_CHANGED(RUNNING->FAULT)",
                  "FAULT_CLEARED(OVER_TEMPERATURE)", "STATE_CHANGED(FAULT->IDLE)"));
  for (size_t i = 1; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].sequence(), d.events[i - 1].sequence() + 1);
  }
  ASSERT_EQ(d.events.size(), 14u);
  EXPECT_EQ(d.events[3].run(), first_.name());
  EXPECT_EQ(d.events[10].run(), second_.name());
}

TEST_F(PenScenarioTest, NoSampleShowsTheMotorOnWhileFaulted) {
  PlayToOverTemperature();
  const DeviceTelemetry& d = Drain(kPen);
  ASSERT_EQ(d.events.size(), 12u) << ::testing::PrintToString(Describe(d.events));
  const size_t stall = 2, restarted = 8, overheated = 9;
  EXPECT_GT(SamplesAfter(d, stall) - SamplesAfter(d, restarted), 50u);
  EXPECT_EQ(OutputOnSamplesBetween(d, stall, restarted), 0u);
  EXPECT_GT(SamplesAfter(d, overheated), 30u);
  EXPECT_EQ(OutputOnSamplesBetween(d, overheated, d.events.size()), 0u);
}

TEST_F(PenScenarioTest, BothFaultsAreCountedByReason) {
  PlayToOverTemperature();
  EXPECT_EQ(Metric("derma_faults_total", "pen-1", {{"reason", "motor_stall"}}), 1);
  EXPECT_EQ(Metric("derma_faults_total", "pen-1", {{"reason", "over_temperature"}}), 1);
  EXPECT_EQ(Metric("derma_faults_total", "pen-1", {{"reason", "cartridge_jam"}}), 0);
}

}  // namespace
}  // namespace derma::testing
