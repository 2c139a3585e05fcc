#include "plugin/core/state_machine.h"

#include <cstdint>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

constexpr uint32_t Bit(v1::DeviceState s) { return uint32_t{1} << static_cast<int>(s); }
constexpr uint32_t kOffline = Bit(v1::DEVICE_STATE_OFFLINE);
constexpr uint32_t kIdle = Bit(v1::DEVICE_STATE_IDLE);
constexpr uint32_t kRunning = Bit(v1::DEVICE_STATE_RUNNING);
constexpr uint32_t kPaused = Bit(v1::DEVICE_STATE_PAUSED);
constexpr uint32_t kFault = Bit(v1::DEVICE_STATE_FAULT);
constexpr uint32_t kEstopped = Bit(v1::DEVICE_STATE_ESTOPPED);
constexpr uint32_t kEvery = kOffline | kIdle | kRunning | kPaused | kFault | kEstopped;

struct Row {
  const char* name;
  uint32_t legal_from;
};

// Indexed by Command. The single source of truth for legality.
constexpr std::array<Row, kCommandCount> kTable = {{
    {"Configure", kIdle | kRunning | kPaused},
    {"Start", kIdle},
    {"Pause", kRunning},
    {"Resume", kPaused},
    {"Stop", kEvery},
    {"EmergencyStop", kEvery},
    {"ResetEmergencyStop", kEstopped},
    {"ResetFault", kFault},
    {"StartRun", kIdle},
    {"CancelRun", kEvery},
    {"Lease", kEvery},
}};

const Row& RowOf(Command command) { return kTable[static_cast<int>(command)]; }

}  // namespace

const char* CommandName(Command command) { return RowOf(command).name; }

std::string StateName(v1::DeviceState state) {
  std::string name = v1::DeviceState_Name(state);
  constexpr absl::string_view kPrefix = "DEVICE_STATE_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name;
}

bool IsLegal(Command command, v1::DeviceState state) {
  return (RowOf(command).legal_from & Bit(state)) != 0;
}

absl::Status CheckLegal(Command command, v1::DeviceState state, const std::string& device) {
  if (IsLegal(command, state)) return absl::OkStatus();
  std::vector<std::string> required;
  for (v1::DeviceState s : kAllStates) {
    if (IsLegal(command, s)) required.push_back(StateName(s));
  }
  const std::string required_list = absl::StrJoin(required, ",");
  const ErrorMetadata metadata = {
      {"device", device}, {"current_state", StateName(state)}, {"required_states", required_list}};
  const std::string detail = absl::StrCat(CommandName(command), " on ", device, " needs state ",
                                          required_list, "; the device is ", StateName(state));
  switch (state) {
    case v1::DEVICE_STATE_OFFLINE:
      return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                       detail + " (link down)", metadata);
    case v1::DEVICE_STATE_ESTOPPED:
      return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_ESTOP_LATCHED,
                       detail + " (emergency stop latched; ResetEmergencyStop first)", metadata);
    case v1::DEVICE_STATE_FAULT:
      return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_FAULT_LATCHED,
                       detail + " (fault latched; ResetFault first)", metadata);
    default:
      return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_ILLEGAL_TRANSITION,
                       detail, metadata);
  }
}

}  // namespace derma
