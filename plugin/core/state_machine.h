// The device state machine as data: which command is legal from which state.
// Layer: plugin/core. Thread-safe (pure functions over constant tables).
//
//                 OFFLINE IDLE RUNNING PAUSED FAULT ESTOPPED
//   Configure        -     x      x      x      -      -
//   Start            -     x      -      -      -      -
//   Pause            -     -      x      -      -      -
//   Resume           -     -      -      x      -      -
//   Stop             x     x      x      x      x      x     (idempotent, no lease)
//   EmergencyStop    x     x      x      x      x      x     (no lease, urgent lane)
//   ResetEStop       -     -      -      -      -      x
//   ResetFault       -     -      -      -      x      -
//   StartRun         -     x      -      -      -      -
//   CancelRun        x     x      x      x      x      x     (checked against the run)
//   lease commands   x     x      x      x      x      x
#ifndef DERMA_PLUGIN_CORE_STATE_MACHINE_H_
#define DERMA_PLUGIN_CORE_STATE_MACHINE_H_

#include <array>
#include <string>

#include "absl/status/status.h"
#include "derma/v1/device.pb.h"

namespace derma {

enum class Command {
  kConfigure,
  kStart,
  kPause,
  kResume,
  kStop,
  kEmergencyStop,
  kResetEmergencyStop,
  kResetFault,
  kStartRun,
  kCancelRun,
  kLease,
};
inline constexpr int kCommandCount = 11;
inline constexpr std::array<Command, kCommandCount> kAllCommands = {
    Command::kConfigure,  Command::kStart,    Command::kPause,
    Command::kResume,     Command::kStop,     Command::kEmergencyStop,
    Command::kResetEmergencyStop, Command::kResetFault, Command::kStartRun,
    Command::kCancelRun,  Command::kLease};

// Every reportable state, in enum order.
inline constexpr std::array<v1::DeviceState, 6> kAllStates = {
    v1::DEVICE_STATE_OFFLINE, v1::DEVICE_STATE_IDLE,  v1::DEVICE_STATE_RUNNING,
    v1::DEVICE_STATE_PAUSED,  v1::DEVICE_STATE_FAULT, v1::DEVICE_STATE_ESTOPPED};

// The command's name as the API spells it, e.g. "Start".
const char* CommandName(Command command);

// "IDLE" for DEVICE_STATE_IDLE.
std::string StateName(v1::DeviceState state);

// True when the table allows `command` in `state`.
bool IsLegal(Command command, v1::DeviceState state);

// OK when legal; otherwise the error a client gets: DEVICE_OFFLINE (UNAVAILABLE) from
// OFFLINE, ESTOP_LATCHED from ESTOPPED, FAULT_LATCHED from FAULT, else ILLEGAL_TRANSITION;
// all carry metadata `device`, `current_state` and `required_states`.
absl::Status CheckLegal(Command command, v1::DeviceState state, const std::string& device);

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_STATE_MACHINE_H_
