// sim/scenarios/lease_loss.textproto: a client leases pen-1 and stim-1 (TTL 2 s), runs a
// program on each, renews once at 1 s and vanishes; stim-1's electrodes lose contact at 1.5 s
// (its run pauses, nobody resumes) and regain it at 5 s. Safe state: at the expiry (3 s) the
// dead-man switch stops pen-1's motor at once, both runs end LEASE_EXPIRED (the paused one too)
// and both devices are IDLE with the output off.
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using grpc::StatusCode;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kTtlS = 2;
constexpr double kExpiryS = 3;  // renewed at 1 s for kTtlS
constexpr double kContactLostS = 1.5;
constexpr double kCurrentUa = 400;

class LeaseLossScenarioTest : public ScenarioFixture {
 protected:
  // The client's whole life: leases, two runs and the scenario at t = 0, one renewal at 1 s;
  // then device time runs to 5.5 s without it.
  void SetUp() override {
    ScenarioFixture::SetUp();
    pen_lease_ = Lease(kPen, kTtlS, "vanishing-script");
    stim_lease_ = Lease(kStim, kTtlS, "vanishing-script");
    Watch(kPen);
    Watch(kStim);
    v1::Settings stim = StimSettings(kCurrentUa);
    stim.mutable_microcurrent()->set_ramp_s(0);
    stim.mutable_microcurrent()->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
    ASSERT_THAT(StartRun(kPen, pen_lease_, {Step(60, PenSettings(0.5, 100))}, &pen_run_), IsOk());
    ASSERT_THAT(StartRun(kStim, stim_lease_, {Step(60, stim)}, &stim_run_), IsOk());
    WatchRunProgress(pen_run_.name());
    ASSERT_EQ(LoadScenarioFile("lease_loss.textproto"), 2u);
    start_us_ = Micros(pen_run_.start_time());
    ASSERT_EQ(Micros(stim_run_.start_time()), start_us_);
    Advance(1.0);
    ASSERT_THAT(RenewLease(kPen, pen_lease_, kTtlS), IsOk());
    ASSERT_THAT(RenewLease(kStim, stim_lease_, kTtlS), IsOk());
    Advance(4.5);
  }

  std::string pen_lease_;
  std::string stim_lease_;
  v1::Run pen_run_;
  v1::Run stim_run_;
  int64_t start_us_ = 0;
};

TEST_F(LeaseLossScenarioTest, RunningPenStopsAtTheExactExpiryAndEndsLeaseExpired) {
  ExpectEndedEarly(GetRun(pen_run_.name()), v1::RUN_END_REASON_LEASE_EXPIRED, kExpiryS, kExpiryS);
  const v1::Device pen = GetDevice(kPen);
  EXPECT_EQ(pen.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(pen.latest_sample().output_on());
  EXPECT_FALSE(pen.has_lease());
  EXPECT_TRUE(pen.active_run().empty());
}

TEST_F(LeaseLossScenarioTest, PausedStimulatorRunAlsoEndsLeaseExpired) {
  const v1::Run ended = GetRun(stim_run_.name());
  ExpectEndedEarly(ended, v1::RUN_END_REASON_LEASE_EXPIRED, kExpiryS, kContactLostS);
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), kCurrentUa * kContactLostS, 1e-6);
  const v1::Device stim = GetDevice(kStim);
  EXPECT_EQ(stim.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(stim.latest_sample().output_on());
  EXPECT_FALSE(stim.has_lease());
  EXPECT_TRUE(stim.active_run().empty());
}

TEST_F(LeaseLossScenarioTest, IdleStimulatorShowsNoFaultAfterTheDeadManStop) {
  // active_fault names what caused FAULT, OFFLINE or an automatic PAUSE; the dead-man stop
  // ended the pause, as Stop would have.
  EXPECT_FALSE(GetDevice(kStim).has_active_fault()) << GetDevice(kStim).active_fault().message();
}

TEST_F(LeaseLossScenarioTest, PenSamplesShowTheMotorOffFromTheExpiryOn) {
  const DeviceTelemetry& d = Drain(kPen);
  const int64_t expiry_us = start_us_ + static_cast<int64_t>(kExpiryS * 1e6);
  size_t on_before = 0, after = 0, on_after = 0;
  for (const v1::TelemetrySample& s : d.sample_log) {
    if (s.device_time_us() < expiry_us) on_before += s.output_on();
    if (s.device_time_us() >= expiry_us) {
      ++after;
      on_after += s.output_on();
    }
  }
  EXPECT_GT(on_before, 250u);
  EXPECT_GT(after, 200u);
  EXPECT_EQ(on_after, 0u);
}

TEST_F(LeaseLossScenarioTest, PenLeaseExpiryEventsAreStreamedInOrderAtTheExpiryTime) {
  const DeviceTelemetry& d = Drain(kPen);
  EXPECT_THAT(d.errors, IsEmpty());
  EXPECT_THAT(Describe(d.events),
              ElementsAre("RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)", "LEASE_EXPIRED",
                          "RUN_ENDED", "STATE_CHANGED(RUNNING->IDLE)"));
  for (size_t i = 1; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].sequence(), d.events[i - 1].sequence() + 1);
  }
  for (size_t i = 2; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].device_time_us() - start_us_, 3'000'000) << i;
  }
}

TEST_F(LeaseLossScenarioTest, StimulatorEventsAreStreamedInOrderWithoutGaps) {
  const DeviceTelemetry& d = Drain(kStim);
  EXPECT_THAT(d.errors, IsEmpty());
  EXPECT_THAT(Describe(d.events),
              ElementsAre("RUN_STARTED", "STATE_CHANGED(IDLE->RUNNING)",
                          "FAULT_RAISED(ELECTRODE_CONTACT_LOST)", "STATE_CHANGED(RUNNING->PAUSED)",
                          "LEASE_EXPIRED", "RUN_ENDED", "STATE_CHANGED(PAUSED->IDLE)",
                          "FAULT_CLEARED(ELECTRODE_CONTACT_LOST)"));
  for (size_t i = 1; i < d.events.size(); ++i) {
    EXPECT_EQ(d.events[i].sequence(), d.events[i - 1].sequence() + 1);
  }
}

TEST_F(LeaseLossScenarioTest, PenRunLedgerNeverDecreasesUntilTheExpiry) {
  ExpectLedgerMonotonic(ReadRunUpdates(), GetRun(pen_run_.name()));
}

TEST_F(LeaseLossScenarioTest, BothDeadManStopsAreCounted) {
  for (const char* id : {"pen-1", "stim-1"}) {
    EXPECT_EQ(Metric("derma_lease_expirations_total", id), 1) << id;
    EXPECT_EQ(Metric("derma_lease_expirations_while_running_total", id), 1) << id;
    EXPECT_EQ(Metric("derma_device_lease_held", id), 0) << id;
  }
}

TEST_F(LeaseLossScenarioTest, VanishedClientsLeaseIsRefusedAndAnotherClientCanTakeOver) {
  EXPECT_THAT(RenewLease(kPen, pen_lease_, kTtlS),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_EXPIRED));
  EXPECT_THAT(Start(kPen, pen_lease_), HasReason(v1::ERROR_REASON_LEASE_EXPIRED));
  const std::string rescue = Lease(kPen, 10, "operator");
  ASSERT_FALSE(rescue.empty());
  ASSERT_THAT(Start(kPen, rescue), IsOk());
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_RUNNING);
}

}  // namespace
}  // namespace derma::testing
