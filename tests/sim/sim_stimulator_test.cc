// SimStimulator behaviour: charge ledger, compliance, waveform, faults, link and determinism.
#include "sim/sim_stimulator.h"

#include <cmath>
#include <numbers>

#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "tests/sim/sim_test_util.h"

namespace derma::sim {
namespace {

using testing::At;
using testing::MustCreate;
using testing::MustRead;
using testing::StimConfig;

v1::Settings StimSettings(double current_ua, double ramp_s,
                          v1::Waveform waveform = v1::WAVEFORM_BIPHASIC_SQUARE,
                          v1::Polarity polarity = v1::POLARITY_POSITIVE) {
  v1::Settings settings;
  v1::MicrocurrentSettings* s = settings.mutable_microcurrent();
  s->set_current_ua(current_ua);
  s->set_frequency_hz(10);
  s->set_waveform(waveform);
  s->set_polarity(polarity);
  s->set_ramp_s(ramp_s);
  s->set_session_limit_s(1200);
  return settings;
}

// A connected MC-10 whose output turned on at t = 0 s with `settings`.
std::unique_ptr<SimDevice> RunningStim(const v1::Settings& settings, uint64_t seed = 42) {
  std::unique_ptr<SimDevice> stim = MustCreate(StimConfig(), seed);
  EXPECT_TRUE(stim->Connect(At(0)).ok());
  EXPECT_TRUE(stim->Apply(settings, At(0)).ok());
  EXPECT_TRUE(stim->SetOutput(true, At(0)).ok());
  return stim;
}

TEST(SimStimulatorTest, ChargeIsExactIntegralOfConstantCurrent) {
  auto stim = RunningStim(StimSettings(500, 0));
  for (int i = 1; i <= 1000; ++i) MustRead(*stim, At(i * 0.01));
  EXPECT_NEAR(MustRead(*stim, At(10)).stim.charge_delivered_uc, 5000, 1e-6);
}

TEST(SimStimulatorTest, ChargeIsExactIntegralOfRamp) {
  auto stim = RunningStim(StimSettings(500, 2));
  // Ramp 2 s: ½ · 500 µA · t² / 2 s, then 500 µA.
  DriverReading mid = MustRead(*stim, At(1));
  EXPECT_NEAR(mid.stim.current_setpoint_ua, 250, 1e-9);
  EXPECT_NEAR(mid.stim.charge_delivered_uc, 125, 1e-6);
  for (int i = 101; i <= 1000; ++i) MustRead(*stim, At(i * 0.01));
  EXPECT_NEAR(MustRead(*stim, At(10)).stim.charge_delivered_uc, 500 + 500 * 8, 1e-6);
}

TEST(SimStimulatorTest, SineChargeUsesMeanAbsoluteValue) {
  auto stim = RunningStim(StimSettings(500, 0, v1::WAVEFORM_SINE));
  EXPECT_NEAR(MustRead(*stim, At(10)).stim.charge_delivered_uc, 2 / std::numbers::pi * 5000, 1e-6);
}

TEST(SimStimulatorTest, MonophasicChargeCountsHalfDutyCycle) {
  auto stim = RunningStim(StimSettings(500, 0, v1::WAVEFORM_MONOPHASIC_SQUARE));
  EXPECT_NEAR(MustRead(*stim, At(10)).stim.charge_delivered_uc, 2500, 1e-6);
}

TEST(SimStimulatorTest, ComplianceLimitsDeliveredCurrent) {
  std::unique_ptr<SimDevice> stim = MustCreate(StimConfig());
  ASSERT_TRUE(stim->SetElectrodeImpedance(20000, At(0)).ok());
  ASSERT_TRUE(stim->Connect(At(0)).ok());
  ASSERT_TRUE(stim->Apply(StimSettings(1000, 0), At(0)).ok());
  ASSERT_TRUE(stim->SetOutput(true, At(0)).ok());
  DriverReading r = MustRead(*stim, At(1.025));  // biphasic, first half: positive
  double ohm = r.stim.electrode_impedance_ohm;
  EXPECT_NEAR(ohm, 20000, 2000);                   // baseline ± drift
  EXPECT_NEAR(r.stim.output_voltage_v, 12, 1e-9);  // at compliance
  EXPECT_NEAR(r.stim.current_measured_ua, 12e6 / ohm, 1.0);
  EXPECT_NEAR(r.stim.current_measured_ua, 600, 60);
  EXPECT_EQ(r.faults, 0u);
}

TEST(SimStimulatorTest, ContactLossOpensCircuit) {
  auto stim = RunningStim(StimSettings(500, 0));
  ASSERT_TRUE(stim->InjectFault(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST, At(1)).ok());
  DriverReading r = MustRead(*stim, At(2));
  EXPECT_NE(r.faults & FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST), 0u);
  EXPECT_FALSE(r.stim.electrode_contact);
  EXPECT_EQ(r.stim.electrode_impedance_ohm, 1e9);
  EXPECT_EQ(r.stim.current_measured_ua, 0);
  EXPECT_NEAR(r.stim.charge_delivered_uc, 500, 1e-6);  // nothing flowed after 1 s
  ASSERT_TRUE(stim->ClearFault(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST, At(2)).ok());
  DriverReading back = MustRead(*stim, At(3));
  EXPECT_TRUE(back.stim.electrode_contact);
  EXPECT_EQ(back.faults, 0u);
  EXPECT_NEAR(back.stim.charge_delivered_uc, 1000, 1e-6);
}

TEST(SimStimulatorTest, ImpedanceSpikeMultipliesImpedanceAndLimitsCurrent) {
  auto stim = RunningStim(StimSettings(500, 0));
  double before = MustRead(*stim, At(1)).stim.electrode_impedance_ohm;
  ASSERT_TRUE(stim->InjectFault(v1::FAULT_KIND_IMPEDANCE_SPIKE, At(1)).ok());
  DriverReading r = MustRead(*stim, At(1.025));
  EXPECT_NE(r.faults & FaultBit(v1::FAULT_KIND_IMPEDANCE_SPIKE), 0u);
  EXPECT_NEAR(r.stim.electrode_impedance_ohm, 20 * before, 0.01 * 20 * before);
  EXPECT_NEAR(r.stim.current_measured_ua, 12e6 / r.stim.electrode_impedance_ohm, 1.0);
  ASSERT_TRUE(stim->ClearFault(v1::FAULT_KIND_IMPEDANCE_SPIKE, At(2)).ok());
  EXPECT_EQ(MustRead(*stim, At(2)).faults, 0u);
}

TEST(SimStimulatorTest, OvercurrentRaisesMeasuredCurrentAboveTolerance) {
  auto stim = RunningStim(StimSettings(500, 0));
  ASSERT_TRUE(stim->InjectFault(v1::FAULT_KIND_OVERCURRENT, At(1)).ok());
  DriverReading r = MustRead(*stim, At(1.025));
  EXPECT_NE(r.faults & FaultBit(v1::FAULT_KIND_OVERCURRENT), 0u);
  EXPECT_GT(r.stim.current_measured_ua, 500 * 1.1);
  EXPECT_NE(r.fault_detail.find("setpoint 500.0"), std::string::npos) << r.fault_detail;
}

TEST(SimStimulatorTest, BiphasicAlternatesSignWithinPeriod) {
  auto stim = RunningStim(StimSettings(500, 0));  // 10 Hz
  EXPECT_NEAR(MustRead(*stim, At(0.025)).stim.current_measured_ua, 500, 1.0);
  EXPECT_NEAR(MustRead(*stim, At(0.075)).stim.current_measured_ua, -500, 1.0);
}

TEST(SimStimulatorTest, NegativePolarityFlipsSign) {
  auto stim =
      RunningStim(StimSettings(500, 0, v1::WAVEFORM_MONOPHASIC_SQUARE, v1::POLARITY_NEGATIVE));
  EXPECT_NEAR(MustRead(*stim, At(0.025)).stim.current_measured_ua, -500, 1.0);
  EXPECT_NEAR(MustRead(*stim, At(0.075)).stim.current_measured_ua, 0, 1.0);
}

TEST(SimStimulatorTest, SineFollowsPhase) {
  auto stim = RunningStim(StimSettings(500, 0, v1::WAVEFORM_SINE));
  EXPECT_NEAR(MustRead(*stim, At(0.025)).stim.current_measured_ua, 500, 1.0);
  EXPECT_NEAR(MustRead(*stim, At(0.05)).stim.current_measured_ua, 0, 1.0);
  EXPECT_NEAR(MustRead(*stim, At(0.075)).stim.current_measured_ua, -500, 1.0);
}

TEST(SimStimulatorTest, AlternatingPolarityFlipsEverySecond) {
  auto stim = RunningStim(StimSettings(500, 0, v1::WAVEFORM_ALTERNATING_POLARITY));
  EXPECT_NEAR(MustRead(*stim, At(0.525)).stim.current_measured_ua, 500, 1.0);
  EXPECT_NEAR(MustRead(*stim, At(1.525)).stim.current_measured_ua, -500, 1.0);
}

TEST(SimStimulatorTest, OutputVoltageIsCurrentTimesImpedance) {
  auto stim = RunningStim(StimSettings(500, 0));
  DriverReading r = MustRead(*stim, At(1));
  EXPECT_NEAR(r.stim.output_voltage_v, 500e-6 * r.stim.electrode_impedance_ohm, 1e-9);
}

TEST(SimStimulatorTest, ImpedanceDriftStaysWithinTenPercent) {
  auto stim = RunningStim(StimSettings(1000, 0));
  for (int s = 0; s <= 600; s += 5) {
    EXPECT_NEAR(MustRead(*stim, At(s)).stim.electrode_impedance_ohm, 5000, 500);
  }
}

TEST(SimStimulatorTest, SameSeedAndCallsGiveIdenticalReadings) {
  auto a = RunningStim(StimSettings(500, 1), 7);
  auto b = RunningStim(StimSettings(500, 1), 7);
  for (int i = 1; i <= 200; ++i) {
    DriverReading ra = MustRead(*a, At(i * 0.013));
    DriverReading rb = MustRead(*b, At(i * 0.013));
    ASSERT_EQ(ra.stim.current_measured_ua, rb.stim.current_measured_ua) << i;
    ASSERT_EQ(ra.stim.electrode_impedance_ohm, rb.stim.electrode_impedance_ohm) << i;
    ASSERT_EQ(ra.stim.charge_delivered_uc, rb.stim.charge_delivered_uc) << i;
  }
}

TEST(SimStimulatorTest, DifferentSeedsGiveDifferentNoise) {
  auto a = RunningStim(StimSettings(500, 0), 7);
  auto b = RunningStim(StimSettings(500, 0), 8);
  DriverReading ra = MustRead(*a, At(1.025));
  DriverReading rb = MustRead(*b, At(1.025));
  EXPECT_NE(ra.stim.current_measured_ua, rb.stim.current_measured_ua);
  EXPECT_EQ(ra.stim.charge_delivered_uc, rb.stim.charge_delivered_uc);  // charge has no noise
}

TEST(SimStimulatorTest, PenFaultsAreNotApplicable) {
  auto stim = MustCreate(StimConfig());
  for (v1::FaultKind kind : {v1::FAULT_KIND_MOTOR_STALL, v1::FAULT_KIND_OVER_TEMPERATURE,
                             v1::FAULT_KIND_CARTRIDGE_JAM}) {
    absl::Status status = stim->InjectFault(kind, At(0));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_FAULT_NOT_APPLICABLE);
  }
}

TEST(SimStimulatorTest, ElectrodeImpedanceOutsideRangeIsRejected) {
  auto stim = MustCreate(StimConfig());
  EXPECT_EQ(stim->SetElectrodeImpedance(50, At(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stim->SetElectrodeImpedance(2e6, At(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(stim->SetElectrodeImpedance(1e6, At(0)).ok());
}

TEST(SimStimulatorTest, LinkDropCutsCurrentAndRefusesConnect) {
  auto stim = RunningStim(StimSettings(500, 0));
  stim->SetLink(false, At(1));
  DriverReading r = MustRead(*stim, At(2));
  EXPECT_FALSE(r.link_up);
  EXPECT_FALSE(r.output_on);
  EXPECT_NEAR(r.stim.charge_delivered_uc, 500, 1e-6);
  EXPECT_EQ(ReasonOf(stim->Connect(At(2))), v1::ERROR_REASON_DEVICE_OFFLINE);
  stim->SetLink(true, At(3));
  EXPECT_TRUE(stim->Connect(At(3)).ok());
}

}  // namespace
}  // namespace derma::sim
