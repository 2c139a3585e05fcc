// Every state × every command of the transition table, through Device's public methods.
#include "plugin/core/state_machine.h"

#include <tuple>

#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Combine;
using ::testing::ValuesIn;

// Issues `command` on the device with a valid lease; returns its status.
absl::Status Issue(Device& device, Command command, const std::string& lease) {
  switch (command) {
    case Command::kConfigure:
      return device.Configure(lease, DeviceFixture::PenSettings(1.0, 120), false).status();
    case Command::kStart:
      return device.Start(lease, "");
    case Command::kPause:
      return device.Pause(lease);
    case Command::kResume:
      return device.Resume(lease);
    case Command::kStop:
      device.Stop();
      return absl::OkStatus();
    case Command::kEmergencyStop:
      device.EmergencyStop();
      return absl::OkStatus();
    case Command::kResetEmergencyStop:
      return device.ResetEmergencyStop(lease);
    case Command::kResetFault:
      return device.ResetFault(lease);
    case Command::kStartRun: {
      v1::RunStep step;
      step.set_duration_s(1);
      return device.StartRun(lease, {step}, "").status();
    }
    case Command::kCancelRun:
      return absl::OkStatus();  // run-specific; covered by the run tests
    case Command::kLease:
      return device.RenewLease(lease, absl::Seconds(30)).status();
  }
  return absl::InternalError("unreachable");
}

// The state a legal command leads to from `from`.
v1::DeviceState Expected(Command command, v1::DeviceState from) {
  switch (command) {
    case Command::kStart:
    case Command::kResume:
    case Command::kStartRun:
      return v1::DEVICE_STATE_RUNNING;
    case Command::kPause:
      return v1::DEVICE_STATE_PAUSED;
    case Command::kStop:
      return from == v1::DEVICE_STATE_RUNNING || from == v1::DEVICE_STATE_PAUSED
                 ? v1::DEVICE_STATE_IDLE
                 : from;
    case Command::kEmergencyStop:
      return from == v1::DEVICE_STATE_OFFLINE ? from : v1::DEVICE_STATE_ESTOPPED;
    case Command::kResetEmergencyStop:
    case Command::kResetFault:
      return v1::DEVICE_STATE_IDLE;
    default:
      return from;
  }
}

v1::ErrorReason ExpectedRejection(v1::DeviceState from) {
  switch (from) {
    case v1::DEVICE_STATE_OFFLINE:
      return v1::ERROR_REASON_DEVICE_OFFLINE;
    case v1::DEVICE_STATE_ESTOPPED:
      return v1::ERROR_REASON_ESTOP_LATCHED;
    case v1::DEVICE_STATE_FAULT:
      return v1::ERROR_REASON_FAULT_LATCHED;
    default:
      return v1::ERROR_REASON_ILLEGAL_TRANSITION;
  }
}

class TransitionTableTest
    : public DeviceFixture,
      public ::testing::WithParamInterface<std::tuple<v1::DeviceState, Command>> {};

TEST_P(TransitionTableTest, CommandFollowsTable) {
  const auto [from, command] = GetParam();
  MakeDevice();
  DriveTo(from);
  if (from == v1::DEVICE_STATE_FAULT) driver_->set_faults(0);  // condition gone, still latched
  const absl::Status status = Issue(*device_, command, lease_);
  if (IsLegal(command, from)) {
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(device_->state(), Expected(command, from));
  } else {
    EXPECT_THAT(status, HasReason(ExpectedRejection(from)));
    EXPECT_EQ(device_->state(), from) << "a rejected command must not change state";
    const ErrorMetadata meta = MetadataOf(status);
    EXPECT_EQ(meta.at("current_state"), StateName(from));
    EXPECT_FALSE(meta.at("required_states").empty());
  }
  EXPECT_EQ(driver_->output_on(), device_->state() == v1::DEVICE_STATE_RUNNING)
      << "output must be on exactly in RUNNING";
}

INSTANTIATE_TEST_SUITE_P(
    AllStatesAllCommands, TransitionTableTest, Combine(ValuesIn(kAllStates), ValuesIn(kAllCommands)),
    [](const ::testing::TestParamInfo<TransitionTableTest::ParamType>& info) {
      return StateName(std::get<0>(info.param)) + "_" + CommandName(std::get<1>(info.param));
    });

TEST(StateMachineTable, StopAndEmergencyStopAreLegalEverywhere) {
  for (v1::DeviceState state : kAllStates) {
    EXPECT_TRUE(IsLegal(Command::kStop, state)) << StateName(state);
    EXPECT_TRUE(IsLegal(Command::kEmergencyStop, state)) << StateName(state);
  }
}

TEST(StateMachineTable, OnlyIdleAllowsStart) {
  for (v1::DeviceState state : kAllStates) {
    EXPECT_EQ(IsLegal(Command::kStart, state), state == v1::DEVICE_STATE_IDLE) << StateName(state);
  }
}

}  // namespace
}  // namespace derma::testing
