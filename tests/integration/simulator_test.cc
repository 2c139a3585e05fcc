// The happy path of every derma.sim.v1.Simulator RPC through a real server: faults, skin
// impedance, link, the virtual clock and scenarios.
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using SimStub = sim::v1::Simulator::Stub;

using SimulatorTest = ServerFixture;

TEST_F(SimulatorTest, AdvanceClockMovesDeviceTimeExactly) {
  const int64_t before = Advance(1);
  const int64_t after = Advance(2.5);
  EXPECT_EQ(after - before, 2'500'000);
  EXPECT_EQ(GetDevice(kPen).latest_sample().device_time_us(), after);
  EXPECT_EQ(GetDevice(kStim2).latest_sample().device_time_us(), after);
}

TEST_F(SimulatorTest, InjectFaultDrivesARunningPenToFaultWithOutputOff) {
  ASSERT_THAT(Start(kPen, Lease(kPen)), IsOk());
  Advance(1);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_MOTOR_STALL), IsOk());
  Advance(0.02);
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_MOTOR_STALL);
  EXPECT_FALSE(device.latest_sample().output_on());
}

TEST_F(SimulatorTest, ClearFaultRemovesTheConditionButKeepsTheLatch) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(Inject(kStim, v1::FAULT_KIND_OVERCURRENT), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_FAULT);
  ASSERT_THAT(ClearFault(kStim, v1::FAULT_KIND_OVERCURRENT), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_FAULT);
  v1::ResetFaultRequest request;
  request.set_name(kStim);
  request.set_lease_id(lease);
  v1::ResetFaultResponse response;
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ResetFault, request, &response), IsOk());
}

TEST_F(SimulatorTest, SetElectrodeImpedanceShowsInTelemetry) {
  sim::v1::SetElectrodeImpedanceRequest request;
  request.set_name(kStim);
  request.set_impedance_ohm(20000);
  sim::v1::SetElectrodeImpedanceResponse response;
  ASSERT_THAT(Invoke(*simulator_, &SimStub::SetElectrodeImpedance, request, &response), IsOk());
  Advance(0.05);
  // The simulated skin wobbles by a few per cent around the baseline.
  EXPECT_NEAR(GetDevice(kStim).latest_sample().microcurrent().electrode_impedance_ohm(), 20000,
              1000);
}

TEST_F(SimulatorTest, SetLinkTakesADeviceOfflineAndBack) {
  ASSERT_THAT(SetLink(kStim2, false), IsOk());
  Advance(0.05);
  const v1::Device offline = GetDevice(kStim2);
  EXPECT_EQ(offline.state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_EQ(offline.active_fault().kind(), v1::FAULT_KIND_LINK_DROP);
  ASSERT_THAT(SetLink(kStim2, true), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kStim2).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(SimulatorTest, LoadScenarioActsAtItsTimes) {
  sim::v1::LoadScenarioRequest request;
  request.set_scenario_text(R"pb(
    actions {
      at_s: 1
      set_link { name: "devices/pen-2" up: false }
    }
    actions {
      at_s: 3
      set_link { name: "devices/pen-2" up: true }
    }
  )pb");
  sim::v1::LoadScenarioResponse response;
  ASSERT_THAT(Invoke(*simulator_, &SimStub::LoadScenario, request, &response), IsOk());
  EXPECT_EQ(response.action_count(), 2u);
  Advance(0.9);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_IDLE);
  Advance(0.2);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_OFFLINE);
  Advance(2);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(SimulatorTest, LoadScenarioAcceptsAnInlineScenario) {
  sim::v1::LoadScenarioRequest request;
  sim::v1::ScenarioAction* action = request.mutable_scenario()->add_actions();
  action->set_at_s(0.5);
  action->mutable_inject_fault()->set_name(kStim);
  action->mutable_inject_fault()->set_kind(v1::FAULT_KIND_IMPEDANCE_SPIKE);
  sim::v1::LoadScenarioResponse response;
  ASSERT_THAT(Invoke(*simulator_, &SimStub::LoadScenario, request, &response), IsOk());
  EXPECT_EQ(response.action_count(), 1u);
  Advance(1);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_FAULT);
  EXPECT_EQ(GetDevice(kStim).active_fault().kind(), v1::FAULT_KIND_IMPEDANCE_SPIKE);
}

}  // namespace
}  // namespace derma::testing
