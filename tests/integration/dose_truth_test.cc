// Dose truth through the API on the virtual clock: a stimulator whose electrode impedance rises
// beyond what its compliance voltage drives at the set current, and a pen whose motor cannot
// reach its stroke rate, fault with the output off after the grace time, their runs ending
// FAULT with the ledger of what was delivered; ramps never trip the check; every ledger carries
// the programmed dose beside the delivered one; capabilities carry the regulation.
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;
using SimStub = sim::v1::Simulator::Stub;

class DoseTruthTest : public ServerFixture {
 protected:
  grpc::Status SetImpedance(const std::string& name, double ohms) {
    sim::v1::SetElectrodeImpedanceRequest request;
    request.set_name(name);
    request.set_impedance_ohm(ohms);
    sim::v1::SetElectrodeImpedanceResponse response;
    return Invoke(*simulator_, &SimStub::SetElectrodeImpedance, request, &response);
  }
};

v1::Settings Ramped(double current_ua, double ramp_s) {
  v1::Settings settings = StimSettings(current_ua);
  settings.mutable_microcurrent()->set_ramp_s(ramp_s);
  settings.mutable_microcurrent()->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
  return settings;
}

TEST_F(DoseTruthTest, StimulatorBeyondItsComplianceFaultsImpedanceSpikeAndTheRunEndsFault) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(10, Ramped(500, 0))}, &run), IsOk());
  Advance(1);
  ASSERT_THAT(SetImpedance(kStim, 200000), IsOk());  // 12 V / 200 kΩ = 60 µA of 500 µA
  Advance(0.1);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_RUNNING) << "within the 0.2 s grace";
  Advance(0.2);
  const v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_IMPEDANCE_SPIKE);
  EXPECT_THAT(device.active_fault().message(), HasSubstr("compliance 12.0 V"));
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_NEAR(ended.ledger().output_on_s(), 1.2, 0.011);
  EXPECT_LT(ended.ledger().charge_delivered_uc(), 0.9 * ended.ledger().charge_programmed_uc());
  EXPECT_NEAR(ended.ledger().charge_programmed_uc(), 500 * ended.ledger().output_on_s(), 1e-6);
}

TEST_F(DoseTruthTest, PenWhoseMotorCannotReachItsRateFaultsMotorUnderspeed) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(10, PenSettings(1.0, 120))}, &run), IsOk());
  Advance(1);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_MOTOR_UNDERSPEED), IsOk());
  Advance(0.5);
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_MOTOR_UNDERSPEED);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_LT(ended.ledger().strokes_delivered(), ended.ledger().strokes_programmed());
  ASSERT_THAT(ClearFault(kPen, v1::FAULT_KIND_MOTOR_UNDERSPEED), IsOk());
}

TEST_F(DoseTruthTest, PenLedgerStatesTheProgrammedStrokesOfItsRampingMotor) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(16, PenSettings(1.0, 100))}, &run), IsOk());
  Advance(17);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_COMPLETED);
  // 100 Hz × 16 s nominal, less the 0.2 s ramp at 500 Hz/s: 1590 strokes programmed.
  EXPECT_NEAR(ended.ledger().strokes_programmed(), 1590, 1e-6);
  EXPECT_NEAR(static_cast<double>(ended.ledger().strokes_delivered()), 1590, 1);
}

TEST_F(DoseTruthTest, StimulatorRampsAndStepChangesNeverTripTheCheck) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(
      StartRun(kStim, lease,
               {Step(3, Ramped(400, 2)), Step(2, Ramped(800, 2)), Step(2, Ramped(100, 0))}, &run),
      IsOk());
  Advance(8);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_COMPLETED) << ended.end_message();
  // 400 µA ramped over 2 s then held 1 s: 800 µC; 800 µA for 2 s: 1600; 100 µA for 2 s: 200.
  EXPECT_NEAR(ended.ledger().charge_programmed_uc(), 2600, 1e-6);
  EXPECT_NEAR(ended.ledger().charge_delivered_uc(), ended.ledger().charge_programmed_uc(), 1e-6);
}

TEST_F(DoseTruthTest, CapabilitiesCarryTheRegulation) {
  const v1::OutputRegulation pen = GetDevice(kPen).capabilities().regulation();
  EXPECT_EQ(pen.stroke_rate_slew_hz_per_s(), 500);
  EXPECT_EQ(pen.tolerance(), 0.1);
  EXPECT_EQ(pen.grace_s(), 0.2);
  EXPECT_EQ(pen.dose_tolerance(), 0.02);
  EXPECT_EQ(GetDevice(kPen2).capabilities().regulation().stroke_rate_slew_hz_per_s(), 800);
  EXPECT_EQ(GetDevice(kStim).capabilities().regulation().grace_s(), 0.2);
}

}  // namespace
}  // namespace derma::testing
