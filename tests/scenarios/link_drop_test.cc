// sim/scenarios/link_drop_recovery.textproto: pen-2's link drops 2 s into a run and returns at
// 3 s. Safe state: output off, run ended LINK_LOST, OFFLINE; then IDLE and ready for a new run.
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;

constexpr double kRateHz = 120;
constexpr double kAccelHzPerS = 800;  // DP-300

class LinkDropScenarioTest : public ScenarioFixture {
 protected:
  // Leases pen-2, watches its telemetry, starts a 60 s run and loads the scenario at the same
  // device time.
  void SetUp() override {
    ScenarioFixture::SetUp();
    lease_ = Lease(kPen2);
    Watch(kPen2);
    strokes_before_ = GetDevice(kPen2).latest_sample().microneedling().strokes_total();
    ASSERT_THAT(StartRun(kPen2, lease_, {Step(60, PenSettings(1.0, kRateHz))}, &run_), IsOk());
    WatchRunProgress(run_.name());
    ASSERT_EQ(LoadScenarioFile("link_drop_recovery.textproto"), 2u);
  }

  std::string lease_;
  v1::Run run_;
  uint64_t strokes_before_ = 0;
};

TEST_F(LinkDropScenarioTest, LinkDropSwitchesTheOutputOffAndTakesTheDeviceOffline) {
  Advance(2.5);
  const v1::Device device = GetDevice(kPen2);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_LINK_DROP);
  EXPECT_TRUE(device.active_run().empty());
  EXPECT_EQ(Metric("derma_device_output_on", "pen-2"), 0);
  EXPECT_EQ(Metric("derma_device_up", "pen-2"), 0);
}

TEST_F(LinkDropScenarioTest, LinkDropEndsTheRunWithLinkLostAtTheDropTime) {
  Advance(2.5);
  ExpectEndedEarly(GetRun(run_.name()), v1::RUN_END_REASON_LINK_LOST, 2.0, 2.0);
}

TEST_F(LinkDropScenarioTest, RunLedgerCountsTheStrokesOfTheOutputOnTime) {
  Advance(2.5);
  const v1::Run ended = GetRun(run_.name());
  const uint64_t strokes_after = GetDevice(kPen2).latest_sample().microneedling().strokes_total();
  EXPECT_EQ(ended.ledger().strokes_delivered(), strokes_after - strokes_before_);
  EXPECT_NEAR(static_cast<double>(ended.ledger().strokes_delivered()),
              PenStrokes(kRateHz, kAccelHzPerS, 2.0), 1.0);
  EXPECT_EQ(ended.ledger().charge_delivered_uc(), 0);
}

TEST_F(LinkDropScenarioTest, RunLedgerNeverDecreasesUntilTheRunEnds) {
  Advance(2.5);
  ExpectLedgerMonotonic(ReadRunUpdates(), GetRun(run_.name()));
}

TEST_F(LinkDropScenarioTest, DropAndRecoveryEventsAreStreamedInOrderWithoutGaps) {
  const int64_t start_us = Micros(run_.start_time());
  Advance(3.5);
  const DeviceTelemetry& d = Drain(kPen2);
  EXPECT_THAT(d.errors, ::testing::IsEmpty());
  EXPECT_THAT(Describe(d.events),
              ElementsAre("RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)", "FAULT_RAISED(LINK_DROP)",
                          "RUN_ENDED", "STATE_CHANGED(RUNNING->OFFLINE)",
                          "FAULT_CLEARED(LINK_DROP)", "STATE_CHANGED(OFFLINE->IDLE)"));
  for (size_t i = 1; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].sequence(), d.events[i - 1].sequence() + 1);
  }
  ASSERT_EQ(d.events.size(), 7u);
  EXPECT_EQ(d.events[2].device_time_us() - start_us, 2'000'000);
  EXPECT_EQ(d.events[4].device_time_us() - start_us, 2'000'000);
  EXPECT_EQ(d.events[6].device_time_us() - start_us, 3'000'000);
  EXPECT_EQ(d.events[3].run(), run_.name());
}

TEST_F(LinkDropScenarioTest, NoSampleAfterTheDropShowsTheOutputOn) {
  Advance(3.5);
  const DeviceTelemetry& d = Drain(kPen2);
  const int raised = EventIndex(d, "FAULT_RAISED(LINK_DROP)");
  ASSERT_GE(raised, 0);
  EXPECT_GT(SamplesAfter(d, raised), 100u);
  EXPECT_EQ(OutputOnSamplesBetween(d, raised, d.events.size()), 0u);
  EXPECT_GT(OutputOnSamplesBetween(d, 0, raised), 0u) << "the run had the output on before";
}

TEST_F(LinkDropScenarioTest, LinkDropIsCountedOnceAsALinkDropFault) {
  Advance(3.5);
  EXPECT_EQ(Metric("derma_faults_total", "pen-2", {{"reason", "link_drop"}}), 1);
  for (const char* other : {"motor_stall", "over_temperature", "cartridge_jam", "driver_error"}) {
    EXPECT_EQ(Metric("derma_faults_total", "pen-2", {{"reason", other}}), 0) << other;
  }
  EXPECT_EQ(Metric("derma_device_up", "pen-2"), 1);
}

TEST_F(LinkDropScenarioTest, RecoveredDeviceIsIdleAndCompletesANewRun) {
  Advance(3.5);
  const v1::Device recovered = GetDevice(kPen2);
  EXPECT_EQ(recovered.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(recovered.has_active_fault());
  EXPECT_FALSE(recovered.latest_sample().output_on());

  v1::Run next;
  ASSERT_THAT(StartRun(kPen2, lease_, {Step(1)}, &next), IsOk());
  Advance(1.5);
  const v1::Run done = GetRun(next.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(done.ledger().output_on_s(), 1.0);
  EXPECT_NEAR(static_cast<double>(done.ledger().strokes_delivered()),
              PenStrokes(kRateHz, kAccelHzPerS, 1.0), 1.0);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_IDLE);
}

}  // namespace
}  // namespace derma::testing
