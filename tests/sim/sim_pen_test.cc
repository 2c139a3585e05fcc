// SimPen behaviour: motor ramp, stroke counting, thermal model, faults and link.
#include "sim/sim_pen.h"

#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "tests/sim/sim_test_util.h"

namespace derma::sim {
namespace {

using testing::At;
using testing::MustCreate;
using testing::MustRead;
using testing::PenConfig;

constexpr FaultMask kStall = FaultBit(v1::FAULT_KIND_MOTOR_STALL);
constexpr FaultMask kJam = FaultBit(v1::FAULT_KIND_CARTRIDGE_JAM);
constexpr FaultMask kHot = FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE);

// A connected DP-100 (accel 500 Hz/s) with the motor switched on at t = 0 s.
std::unique_ptr<SimDevice> RunningPen(double rate_hz = 100,
                                      config::v1::DeviceConfig config = PenConfig()) {
  std::unique_ptr<SimDevice> pen = MustCreate(config);
  v1::Settings settings = pen->Description()->default_settings;
  settings.mutable_microneedling()->set_stroke_rate_hz(rate_hz);
  EXPECT_TRUE(pen->Connect(At(0)).ok());
  EXPECT_TRUE(pen->Apply(settings, At(0)).ok());
  EXPECT_TRUE(pen->SetOutput(true, At(0)).ok());
  return pen;
}

TEST(SimPenTest, PenMotorRampsLinearlyToStrokeRate) {
  auto pen = RunningPen(100);
  EXPECT_DOUBLE_EQ(MustRead(*pen, At(0)).pen.stroke_rate_hz, 0);
  EXPECT_NEAR(MustRead(*pen, At(0.05)).pen.stroke_rate_hz, 25, 1e-9);
  EXPECT_NEAR(MustRead(*pen, At(0.1)).pen.stroke_rate_hz, 50, 1e-9);
  EXPECT_DOUBLE_EQ(MustRead(*pen, At(0.2)).pen.stroke_rate_hz, 100);
  EXPECT_DOUBLE_EQ(MustRead(*pen, At(5)).pen.stroke_rate_hz, 100);
}

TEST(SimPenTest, StrokeCountIsExactIntegralOfRamp) {
  auto pen = RunningPen(100);
  // Ramp 0.2 s: ½ · 100 Hz · 0.2 s = 10 strokes; then 100 strokes per second.
  EXPECT_EQ(MustRead(*pen, At(0.1)).pen.strokes_total, 2u);  // ½ · 500 · 0.1² = 2.5
  EXPECT_EQ(MustRead(*pen, At(0.2)).pen.strokes_total, 10u);
  EXPECT_EQ(MustRead(*pen, At(1.2)).pen.strokes_total, 110u);
}

TEST(SimPenTest, StrokeCountDoesNotDependOnReadInterval) {
  auto coarse = RunningPen(100);
  auto fine = RunningPen(100);
  for (int i = 1; i <= 1200; ++i) MustRead(*fine, At(i * 0.001));
  EXPECT_EQ(MustRead(*coarse, At(1.2)).pen.strokes_total, 110u);
  EXPECT_EQ(MustRead(*fine, At(1.2)).pen.strokes_total, 110u);
}

TEST(SimPenTest, MotorStopsAtOnceWhenOutputTurnsOff) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->SetOutput(false, At(1.2)).ok());
  DriverReading r = MustRead(*pen, At(1.2));
  EXPECT_FALSE(r.output_on);
  EXPECT_EQ(r.pen.stroke_rate_hz, 0);
  EXPECT_EQ(r.pen.motor_current_a, 0);
  EXPECT_EQ(MustRead(*pen, At(3)).pen.strokes_total, 110u);
}

TEST(SimPenTest, UnderspeedTopsOutAtHalfTheSetpointAndReportsNothing) {
  auto pen = RunningPen(120);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_MOTOR_UNDERSPEED, At(1)).ok());
  // From 120 Hz down to 60 Hz at 500 Hz/s: 0.12 s.
  EXPECT_NEAR(MustRead(*pen, At(1.06)).pen.stroke_rate_hz, 90, 1e-9);
  const DriverReading r = MustRead(*pen, At(2));
  EXPECT_DOUBLE_EQ(r.pen.stroke_rate_hz, 60);
  EXPECT_EQ(r.faults, 0u) << "derma's regulation check finds it, not the device";
  ASSERT_TRUE(pen->ClearFault(v1::FAULT_KIND_MOTOR_UNDERSPEED, At(2)).ok());
  EXPECT_DOUBLE_EQ(MustRead(*pen, At(3)).pen.stroke_rate_hz, 120);
}

TEST(SimPenTest, MotorRampsDownLinearlyToLowerSetpoint) {
  auto pen = RunningPen(100);
  v1::Settings slower = pen->Description()->default_settings;
  slower.mutable_microneedling()->set_stroke_rate_hz(50);
  ASSERT_TRUE(pen->Apply(slower, At(1)).ok());
  EXPECT_NEAR(MustRead(*pen, At(1.05)).pen.stroke_rate_hz, 75, 1e-9);
  EXPECT_DOUBLE_EQ(MustRead(*pen, At(1.2)).pen.stroke_rate_hz, 50);
}

TEST(SimPenTest, CartridgeCountsStrokesFromSetup) {
  config::v1::DeviceConfig config = PenConfig();
  config.mutable_pen()->set_cartridge_strokes_used(1999990);
  auto pen = RunningPen(100, config);
  DriverReading r = MustRead(*pen, At(1.2));
  EXPECT_EQ(r.pen.cartridge_strokes_used, 2000100u);
  EXPECT_EQ(r.cartridge.strokes_used(), 2000100u);
  EXPECT_EQ(r.cartridge.strokes_rated(), 2000000u);  // expired: used ≥ rated
  EXPECT_EQ(r.cartridge.needle_count(), 12u);
  EXPECT_DOUBLE_EQ(r.cartridge.needle_length_mm(), 2.5);
}

TEST(SimPenTest, TemperatureRisesUnderLoadButStaysBelowLimit) {
  auto pen = RunningPen(150);
  DriverReading r = MustRead(*pen, At(60));
  EXPECT_GT(r.pen.motor_temperature_c, 45);
  EXPECT_LT(r.pen.motor_temperature_c, 60);
  EXPECT_EQ(r.faults & kHot, 0u);
}

TEST(SimPenTest, MotorStallStopsStrokesWithHighCurrent) {
  auto pen = RunningPen(100);
  uint64_t before = MustRead(*pen, At(1)).pen.strokes_total;
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_MOTOR_STALL, At(1)).ok());
  DriverReading r = MustRead(*pen, At(1.5));
  EXPECT_NE(r.faults & kStall, 0u);
  EXPECT_TRUE(r.output_on);
  EXPECT_EQ(r.pen.stroke_rate_hz, 0);
  EXPECT_EQ(r.pen.strokes_total, before);
  EXPECT_GT(r.pen.motor_current_a, 1.5);
  EXPECT_NE(r.fault_detail.find("stalled"), std::string::npos);
}

TEST(SimPenTest, StalledMotorOverheats) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_MOTOR_STALL, At(0)).ok());
  EXPECT_NE(MustRead(*pen, At(10)).faults & kHot, 0u);
}

TEST(SimPenTest, ClearedStallRampsMotorUpAgain) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_MOTOR_STALL, At(1)).ok());
  ASSERT_TRUE(pen->ClearFault(v1::FAULT_KIND_MOTOR_STALL, At(1.1)).ok());
  DriverReading r = MustRead(*pen, At(1.2));
  EXPECT_EQ(r.faults & kStall, 0u);
  EXPECT_NEAR(r.pen.stroke_rate_hz, 50, 1e-9);
}

TEST(SimPenTest, CartridgeJamStopsStrokes) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_CARTRIDGE_JAM, At(1)).ok());
  DriverReading r = MustRead(*pen, At(2));
  EXPECT_NE(r.faults & kJam, 0u);
  EXPECT_EQ(r.pen.strokes_total, 90u);
  ASSERT_TRUE(pen->ClearFault(v1::FAULT_KIND_CARTRIDGE_JAM, At(2)).ok());
  EXPECT_EQ(MustRead(*pen, At(2)).faults & kJam, 0u);
}

TEST(SimPenTest, InjectedOverTemperatureReportsLimit) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_OVER_TEMPERATURE, At(1)).ok());
  DriverReading r = MustRead(*pen, At(1));
  EXPECT_NE(r.faults & kHot, 0u);
  EXPECT_GE(r.pen.motor_temperature_c, 70);
  EXPECT_NE(r.fault_detail.find("> limit 60.0 °C"), std::string::npos) << r.fault_detail;
  EXPECT_NE(MustRead(*pen, At(30)).faults & kHot, 0u);  // held while injected
}

TEST(SimPenTest, OverTemperatureClearsAfterCoolingBelowHysteresis) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_OVER_TEMPERATURE, At(1)).ok());
  ASSERT_TRUE(pen->SetOutput(false, At(1)).ok());
  ASSERT_TRUE(pen->ClearFault(v1::FAULT_KIND_OVER_TEMPERATURE, At(1)).ok());
  DriverReading warm = MustRead(*pen, At(2));  // 25 + 45·e^(−1/4) ≈ 60.0 °C: still latched
  EXPECT_NE(warm.faults & kHot, 0u);
  DriverReading cool = MustRead(*pen, At(4));  // ≈ 47 °C < 55 °C
  EXPECT_EQ(cool.faults & kHot, 0u);
  EXPECT_LT(cool.pen.motor_temperature_c, 55);
}

TEST(SimPenTest, StimulatorFaultsAreNotApplicable) {
  auto pen = MustCreate(PenConfig());
  for (v1::FaultKind kind : {v1::FAULT_KIND_ELECTRODE_CONTACT_LOST, v1::FAULT_KIND_IMPEDANCE_SPIKE,
                             v1::FAULT_KIND_OVERCURRENT}) {
    absl::Status status = pen->InjectFault(kind, At(0));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_FAULT_NOT_APPLICABLE);
    EXPECT_EQ(ReasonOf(pen->ClearFault(kind, At(0))), v1::ERROR_REASON_FAULT_NOT_APPLICABLE);
  }
}

TEST(SimPenTest, ElectrodeImpedanceIsNotSupported) {
  auto pen = MustCreate(PenConfig());
  absl::Status status = pen->SetElectrodeImpedance(5000, At(0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_SETTING_NOT_SUPPORTED);
}

TEST(SimPenTest, LinkDropCutsMotorAndRefusesConnect) {
  auto pen = RunningPen(100);
  pen->SetLink(false, At(1));
  DriverReading r = MustRead(*pen, At(1));
  EXPECT_FALSE(r.link_up);
  EXPECT_FALSE(r.output_on);
  EXPECT_EQ(r.pen.stroke_rate_hz, 0);
  absl::Status connect = pen->Connect(At(1));
  EXPECT_EQ(connect.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(connect), v1::ERROR_REASON_DEVICE_OFFLINE);
  EXPECT_EQ(pen->SetOutput(true, At(1)).code(), absl::StatusCode::kUnavailable);
}

TEST(SimPenTest, RestoredLinkNeedsConnectBeforeOutput) {
  auto pen = RunningPen(100);
  ASSERT_TRUE(pen->InjectFault(v1::FAULT_KIND_LINK_DROP, At(1)).ok());
  ASSERT_TRUE(pen->ClearFault(v1::FAULT_KIND_LINK_DROP, At(2)).ok());
  EXPECT_TRUE(MustRead(*pen, At(2)).link_up);
  EXPECT_EQ(pen->SetOutput(true, At(2)).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(pen->Connect(At(2)).ok());
  EXPECT_TRUE(pen->SetOutput(true, At(2)).ok());
  EXPECT_TRUE(MustRead(*pen, At(2)).output_on);
}

TEST(SimPenTest, ApplyRejectsStimulatorSettings) {
  auto pen = MustCreate(PenConfig());
  v1::Settings settings;
  settings.mutable_microcurrent()->set_current_ua(100);
  EXPECT_EQ(pen->Apply(settings, At(0)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SimPenTest, SerialComesFromConfigOrId) {
  EXPECT_EQ(MustCreate(PenConfig())->Description()->serial_number, "SIM-pen-1");
  config::v1::DeviceConfig config = PenConfig();
  config.set_serial_number("DP100-0042");
  EXPECT_EQ(MustCreate(config)->Description()->serial_number, "DP100-0042");
}

}  // namespace
}  // namespace derma::sim
