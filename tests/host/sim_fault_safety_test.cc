// Every fault the simulator can raise, injected into a RUNNING simulated device of the shipped
// fleet, drives it to its documented safe state: output off first, then FAULT (or PAUSED for
// electrode contact loss, OFFLINE for a link drop), with the fault reported as an event.
#include <tuple>

#include "plugin/core/state_machine.h"
#include "tests/host/fleet_fixture.h"

namespace derma::testing {
namespace {

struct FaultCase {
  const char* device;
  v1::FaultKind fault;
  v1::DeviceState safe_state;
  // Device time within which the device must be safe: two sample periods for what the device
  // reports, the regulation grace time (0.2 s) plus the motor's slowdown for MOTOR_UNDERSPEED.
  double reaction_s = 0.02;
};

const FaultCase kCases[] = {
    {"devices/pen-1", v1::FAULT_KIND_MOTOR_STALL, v1::DEVICE_STATE_FAULT},
    {"devices/pen-1", v1::FAULT_KIND_OVER_TEMPERATURE, v1::DEVICE_STATE_FAULT},
    {"devices/pen-1", v1::FAULT_KIND_CARTRIDGE_JAM, v1::DEVICE_STATE_FAULT},
    {"devices/pen-1", v1::FAULT_KIND_MOTOR_UNDERSPEED, v1::DEVICE_STATE_FAULT, 0.25},
    {"devices/pen-2", v1::FAULT_KIND_LINK_DROP, v1::DEVICE_STATE_OFFLINE},
    {"devices/stim-1", v1::FAULT_KIND_ELECTRODE_CONTACT_LOST, v1::DEVICE_STATE_PAUSED},
    {"devices/stim-1", v1::FAULT_KIND_IMPEDANCE_SPIKE, v1::DEVICE_STATE_FAULT},
    {"devices/stim-1", v1::FAULT_KIND_OVERCURRENT, v1::DEVICE_STATE_FAULT},
    {"devices/stim-2", v1::FAULT_KIND_LINK_DROP, v1::DEVICE_STATE_OFFLINE},
};

class SimFaultSafetyTest : public FleetFixture, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(SimFaultSafetyTest, RunningDeviceReachesSafeStateWithOutputOff) {
  const FaultCase& c = GetParam();
  const uint32_t index = Index(c.device);
  const std::string lease = Lease(c.device);
  v1::RunStep step;
  step.set_duration_s(60);
  ASSERT_TRUE(
      fleet_->devices().Call(index, [&](Device& d) { return d.StartRun(lease, {step}, ""); }).ok());
  Advance(2.0);
  ASSERT_EQ(Get(c.device).state(), v1::DEVICE_STATE_RUNNING);
  ASSERT_TRUE(Get(c.device).latest_sample().output_on());

  ASSERT_TRUE(Inject(c.device, c.fault).ok());
  Advance(c.reaction_s);

  const v1::Device device = Get(c.device);
  EXPECT_EQ(device.state(), c.safe_state) << StateName(device.state());
  EXPECT_FALSE(device.latest_sample().output_on()) << "output must be off in the safe state";
  EXPECT_EQ(device.active_fault().kind(), c.fault);
  EXPECT_TRUE(device.active_run().empty() || c.safe_state == v1::DEVICE_STATE_PAUSED);

  bool raised = false;
  for (const v1::DeviceEvent& e : Events(c.device)) {
    if (e.type() == v1::DEVICE_EVENT_TYPE_FAULT_RAISED && e.fault().kind() == c.fault) {
      raised = true;
    }
    if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED && e.to_state() == c.safe_state) {
      EXPECT_TRUE(raised) << "the fault is reported before (or with) the state change";
    }
  }
  EXPECT_TRUE(raised);
  // Output stays off while time passes.
  Advance(1.0);
  EXPECT_FALSE(Get(c.device).latest_sample().output_on());
}

INSTANTIATE_TEST_SUITE_P(EveryFault, SimFaultSafetyTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<FaultCase>& info) {
                           std::string name = std::string(info.param.device).substr(8) + "_" +
                                              v1::FaultKind_Name(info.param.fault);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace derma::testing
