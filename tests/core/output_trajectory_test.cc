// OutputTrajectory and RegulationMonitor: the programmed output (ramps, setpoint changes, output
// off and on, waveform shapes) integrated in closed form, and the grace time of a shortfall.
#include "plugin/core/output_trajectory.h"

#include <numbers>

#include "gtest/gtest.h"

namespace derma {
namespace {

v1::OutputRegulation Regulation(double slew_hz_per_s) {
  v1::OutputRegulation regulation;
  regulation.set_stroke_rate_slew_hz_per_s(slew_hz_per_s);
  regulation.set_tolerance(0.1);
  regulation.set_grace_s(0.2);
  return regulation;
}

v1::Settings Pen(double rate_hz) {
  v1::Settings settings;
  settings.mutable_microneedling()->set_stroke_rate_hz(rate_hz);
  return settings;
}

v1::Settings Stim(double current_ua, double ramp_s, v1::Waveform waveform) {
  v1::Settings settings;
  settings.mutable_microcurrent()->set_current_ua(current_ua);
  settings.mutable_microcurrent()->set_ramp_s(ramp_s);
  settings.mutable_microcurrent()->set_waveform(waveform);
  return settings;
}

TEST(OutputTrajectoryTest, PenRampsFromZeroAtItsSlewThenHoldsTheSetpoint) {
  OutputTrajectory pen(v1::DEVICE_KIND_MICRONEEDLING, Regulation(500));
  pen.SetSettings(Pen(100));
  pen.SetOutput(true);
  // 0 → 100 Hz takes 0.2 s: 10 strokes, then 100 Hz for 15.8 s: 1580.
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Milliseconds(100)).strokes, 2.5);
  EXPECT_DOUBLE_EQ(pen.rate_hz(), 50);
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Milliseconds(15900)).strokes, 1587.5);
  EXPECT_DOUBLE_EQ(pen.rate_hz(), 100);
}

TEST(OutputTrajectoryTest, PenSlewsFromItsRateWhenTheSetpointChanges) {
  OutputTrajectory pen(v1::DEVICE_KIND_MICRONEEDLING, Regulation(500));
  pen.SetSettings(Pen(100));
  pen.SetOutput(true);
  pen.Advance(absl::Seconds(1));
  pen.SetSettings(Pen(150));
  // 100 → 150 Hz in 0.1 s: 12.5 strokes, then 150 Hz for 0.1 s: 15.
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Milliseconds(200)).strokes, 27.5);
  pen.SetSettings(Pen(50));
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Milliseconds(100)).strokes, 12.5);
  EXPECT_DOUBLE_EQ(pen.rate_hz(), 100);
}

TEST(OutputTrajectoryTest, OutputOffProgramsNothingAndOnStartsANewRamp) {
  OutputTrajectory pen(v1::DEVICE_KIND_MICRONEEDLING, Regulation(500));
  pen.SetSettings(Pen(100));
  pen.SetOutput(true);
  pen.Advance(absl::Seconds(1));
  pen.SetOutput(false);
  EXPECT_EQ(pen.rate_hz(), 0);
  EXPECT_EQ(pen.Advance(absl::Seconds(1)).strokes, 0);
  pen.SetOutput(true);
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Milliseconds(200)).strokes, 10);
}

TEST(OutputTrajectoryTest, PenWithoutSlewFollowsItsSetpointAtOnce) {
  OutputTrajectory pen(v1::DEVICE_KIND_MICRONEEDLING, Regulation(0));
  pen.SetSettings(Pen(120));
  pen.SetOutput(true);
  EXPECT_DOUBLE_EQ(pen.rate_hz(), 120);
  EXPECT_DOUBLE_EQ(pen.Advance(absl::Seconds(2)).strokes, 240);
}

TEST(OutputTrajectoryTest, StimulatorRampsLinearlyOverRampSeconds) {
  OutputTrajectory stim(v1::DEVICE_KIND_MICROCURRENT, Regulation(0));
  stim.SetSettings(Stim(500, 1, v1::WAVEFORM_BIPHASIC_SQUARE));
  stim.SetOutput(true);
  // Ramp: 500 µA × 1 s / 2 = 250 µC in the first second, then 500 µC/s.
  EXPECT_DOUBLE_EQ(stim.Advance(absl::Milliseconds(500)).charge_uc, 62.5);
  EXPECT_DOUBLE_EQ(stim.amplitude_ua(), 250);
  EXPECT_DOUBLE_EQ(stim.Advance(absl::Milliseconds(1500)).charge_uc, 187.5 + 500);
}

TEST(OutputTrajectoryTest, StimulatorChargeRateFollowsTheWaveformsMeanShape) {
  const struct {
    v1::Waveform waveform;
    double mean_abs_shape;
  } cases[] = {{v1::WAVEFORM_BIPHASIC_SQUARE, 1},
               {v1::WAVEFORM_MONOPHASIC_SQUARE, 0.5},
               {v1::WAVEFORM_ALTERNATING_POLARITY, 0.5},
               {v1::WAVEFORM_SINE, 2 / std::numbers::pi}};
  for (const auto& c : cases) {
    OutputTrajectory stim(v1::DEVICE_KIND_MICROCURRENT, Regulation(0));
    stim.SetSettings(Stim(400, 0, c.waveform));
    stim.SetOutput(true);
    EXPECT_DOUBLE_EQ(stim.Advance(absl::Seconds(10)).charge_uc, 4000 * c.mean_abs_shape)
        << v1::Waveform_Name(c.waveform);
  }
}

class RegulationMonitorTest : public ::testing::Test {
 protected:
  absl::Time At(double s) { return start_ + absl::Seconds(s); }
  const absl::Time start_ = absl::FromUnixSeconds(1000);
  RegulationMonitor monitor_{Regulation(0)};
};

TEST_F(RegulationMonitorTest, TripsOnceAShortfallHasLastedTheGraceTime) {
  EXPECT_FALSE(monitor_.Observe(At(0), At(0.1), 50, 100));
  EXPECT_EQ(monitor_.TripTime(), At(0.2));
  EXPECT_FALSE(monitor_.Observe(At(0.1), At(0.19), 50, 100));
  EXPECT_TRUE(monitor_.Observe(At(0.19), At(0.2), 50, 100));
}

TEST_F(RegulationMonitorTest, WithinToleranceIsNoShortfallAndEndsOne) {
  EXPECT_FALSE(monitor_.Observe(At(0), At(0.15), 50, 100));
  EXPECT_FALSE(monitor_.Observe(At(0.15), At(0.16), 91, 100)) << "9 % short is within";
  EXPECT_EQ(monitor_.TripTime(), std::nullopt);
  EXPECT_FALSE(monitor_.Observe(At(0.16), At(0.3), 50, 100));
  EXPECT_TRUE(monitor_.Observe(At(0.3), At(0.36), 50, 100));
}

TEST_F(RegulationMonitorTest, RestartCountsTheGraceTimeAfresh) {
  EXPECT_FALSE(monitor_.Observe(At(0), At(0.15), 0, 100));
  monitor_.Restart();
  EXPECT_FALSE(monitor_.Observe(At(0.15), At(0.3), 0, 100));
  EXPECT_TRUE(monitor_.Observe(At(0.3), At(0.35), 0, 100));
}

TEST_F(RegulationMonitorTest, NothingProgrammedIsNeverShortAndZeroGraceIsOff) {
  EXPECT_FALSE(monitor_.Observe(At(0), At(1), 0, 0));
  v1::OutputRegulation off = Regulation(0);
  off.set_grace_s(0);
  RegulationMonitor disabled(off);
  EXPECT_FALSE(disabled.enabled());
  EXPECT_FALSE(disabled.Observe(At(0), At(10), 0, 100));
}

}  // namespace
}  // namespace derma
