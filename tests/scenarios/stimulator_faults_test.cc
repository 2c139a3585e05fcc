// sim/scenarios/stimulator_contact_and_impedance.textproto: stim-1 loses electrode contact 2 s
// into a run (contact back at 3 s, when the operator resumes), then its impedance spikes at 5 s
// (gone at 6 s). Safe states: PAUSED with the current off and the run held; then FAULT with the
// current off and the run ended FAULT; ResetFault only once the spike is gone.
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using grpc::StatusCode;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kCurrentUa = 400;

class StimulatorScenarioTest : public ScenarioFixture {
 protected:
  // Leases stim-1, watches its telemetry, starts a 60 s run (400 µA biphasic, no ramp, so the
  // charge is exactly current × output-on time) and loads the scenario at the same device time.
  void SetUp() override {
    ScenarioFixture::SetUp();
    lease_ = Lease(kStim);
    Watch(kStim);
    charge_before_ = GetDevice(kStim).latest_sample().microcurrent().charge_delivered_uc();
    v1::Settings settings = StimSettings(kCurrentUa);
    settings.mutable_microcurrent()->set_ramp_s(0);
    settings.mutable_microcurrent()->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
    ASSERT_THAT(StartRun(kStim, lease_, {Step(60, settings)}, &run_), IsOk());
    WatchRunProgress(run_.name());
    ASSERT_EQ(LoadScenarioFile("stimulator_contact_and_impedance.textproto"), 4u);
  }

  // To t = 2.5 s: contact lost at 2 s.
  void PlayToContactLoss() { Advance(2.5); }
  // To t = 5.5 s: contact back at 3 s, the operator resumes then, the impedance spikes at 5 s.
  void PlayToSpike() {
    Advance(3.0);
    ASSERT_THAT(Resume(kStim, lease_), IsOk());
    Advance(2.5);
  }

  std::string lease_;
  v1::Run run_;
  double charge_before_ = 0;
};

TEST_F(StimulatorScenarioTest, ContactLossPausesTheRunWithTheCurrentOff) {
  PlayToContactLoss();
  const v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_PAUSED);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.latest_sample().microcurrent().current_measured_ua(), 0);
  EXPECT_FALSE(device.latest_sample().microcurrent().electrode_contact());
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
  EXPECT_EQ(device.active_run(), run_.name());
  const v1::Run held = GetRun(run_.name());
  EXPECT_EQ(held.state(), v1::RUN_STATE_PAUSED);
  EXPECT_DOUBLE_EQ(held.ledger().output_on_s(), 2.0);
  EXPECT_NEAR(held.ledger().charge_delivered_uc(), 2.0 * kCurrentUa, 1e-6);
}

TEST_F(StimulatorScenarioTest, ResumeIsRefusedUntilContactReturns) {
  PlayToContactLoss();
  EXPECT_THAT(Resume(kStim, lease_),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_NO_ELECTRODE_CONTACT));
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_PAUSED);
  Advance(0.5);
  ASSERT_THAT(Resume(kStim, lease_), IsOk());
  const v1::Device resumed = GetDevice(kStim);
  EXPECT_EQ(resumed.state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_TRUE(resumed.latest_sample().output_on());
  EXPECT_FALSE(resumed.has_active_fault());
}

TEST_F(StimulatorScenarioTest, ImpedanceSpikeLatchesFaultWithTheCurrentOff) {
  PlayToSpike();
  const v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.latest_sample().microcurrent().current_measured_ua(), 0);
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_IMPEDANCE_SPIKE);
  EXPECT_TRUE(device.active_run().empty());
  EXPECT_EQ(Metric("derma_device_output_on", "stim-1"), 0);
  EXPECT_EQ(Metric("derma_device_state", "stim-1", {{"state", "fault"}}), 1);
}

TEST_F(StimulatorScenarioTest, ImpedanceSpikeEndsTheRunWithFaultAtTheSpikeTime) {
  PlayToSpike();
  ExpectEndedEarly(GetRun(run_.name()), v1::RUN_END_REASON_FAULT, 5.0, 4.0);
}

TEST_F(StimulatorScenarioTest, RunChargeIsTheCurrentTimesTheOutputOnTime) {
  PlayToSpike();
  const v1::Run ended = GetRun(run_.name());
  const double charge_after = GetDevice(kStim).latest_sample().microcurrent().charge_delivered_uc();
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), kCurrentUa * 4.0, 1e-6);
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), charge_after - charge_before_, 1e-6);
  EXPECT_EQ(ended.ledger().strokes_delivered(), 0u);
}

TEST_F(StimulatorScenarioTest, RunLedgerNeverDecreasesThroughThePauseAndTheFault) {
  PlayToSpike();
  ExpectLedgerMonotonic(ReadRunUpdates(), GetRun(run_.name()));
}

TEST_F(StimulatorScenarioTest, ResetFaultIsRefusedUntilTheSpikeIsGone) {
  PlayToSpike();
  EXPECT_THAT(ResetFault(kStim, lease_),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_FAULT);
  Advance(1.0);
  ASSERT_THAT(ResetFault(kStim, lease_), IsOk());
  const v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device.has_active_fault());
  EXPECT_FALSE(device.latest_sample().output_on());
}

TEST_F(StimulatorScenarioTest, EventsAreStreamedInOrderWithoutGaps) {
  PlayToSpike();
  Advance(1.0);
  ASSERT_THAT(ResetFault(kStim, lease_), IsOk());
  const DeviceTelemetry& d = Drain(kStim);
  EXPECT_THAT(d.errors, IsEmpty());
  EXPECT_THAT(
      Describe(d.events),
      ElementsAre("RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)",
                  "FAULT_RAISED(ELECTRODE_CONTACT_LOST)", "STATE_CHANGED(RUNNING->PAUSED)",
                  "FAULT_CLEARED(ELECTRODE_CONTACT_LOST)", "STATE_CHANGED(PAUSED->RUNNING)",
                  "FAULT_RAISED(IMPEDANCE_SPIKE)", "RUN_ENDED", "STATE_CHANGED(RUNNING->FAULT)",
                  "FAULT_CLEARED(IMPEDANCE_SPIKE)", "STATE_CHANGED(FAULT->IDLE)"));
  for (size_t i = 1; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].sequence(), d.events[i - 1].sequence() + 1);
  }
}

TEST_F(StimulatorScenarioTest, NoSampleShowsTheCurrentOnWhilePausedOrFaulted) {
  PlayToSpike();
  const DeviceTelemetry& d = Drain(kStim);
  const int lost = EventIndex(d, "FAULT_RAISED(ELECTRODE_CONTACT_LOST)");
  const int resumed = EventIndex(d, "STATE_CHANGED(PAUSED->RUNNING)");
  const int spike = EventIndex(d, "FAULT_RAISED(IMPEDANCE_SPIKE)");
  ASSERT_GE(lost, 0);
  ASSERT_GT(resumed, lost);
  ASSERT_GT(spike, resumed);
  EXPECT_GT(SamplesAfter(d, lost) - SamplesAfter(d, resumed), 50u);
  EXPECT_EQ(OutputOnSamplesBetween(d, lost, resumed), 0u);
  EXPECT_GT(SamplesAfter(d, spike), 30u);
  EXPECT_EQ(OutputOnSamplesBetween(d, spike, d.events.size()), 0u);
}

TEST_F(StimulatorScenarioTest, BothFaultsAreCountedByReason) {
  PlayToSpike();
  EXPECT_EQ(Metric("derma_faults_total", "stim-1", {{"reason", "electrode_contact_lost"}}), 1);
  EXPECT_EQ(Metric("derma_faults_total", "stim-1", {{"reason", "impedance_spike"}}), 1);
  EXPECT_EQ(Metric("derma_faults_total", "stim-1", {{"reason", "overcurrent"}}), 0);
  EXPECT_EQ(Metric("derma_faults_total", "stim-1", {{"reason", "link_drop"}}), 0);
}

}  // namespace
}  // namespace derma::testing
