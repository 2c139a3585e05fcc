#include "plugin/auth/policy.h"

#include <utility>

#include "absl/container/flat_hash_map.h"

namespace derma::auth {
namespace {

constexpr std::pair<const char*, Role> kTable[] = {
    // Reads and streams.
    {"/derma.v1.DeviceControl/ListDevices", Role::kViewer},
    {"/derma.v1.DeviceControl/GetDevice", Role::kViewer},
    {"/derma.v1.DeviceControl/GetRun", Role::kViewer},
    {"/derma.v1.DeviceControl/ListRuns", Role::kViewer},
    {"/derma.v1.DeviceControl/WatchRun", Role::kViewer},
    {"/derma.v1.DeviceControl/StreamTelemetry", Role::kViewer},
    // Safety first: anyone authenticated may stop everything.
    {"/derma.v1.DeviceControl/EmergencyStop", Role::kViewer},
    // Driving devices.
    {"/derma.v1.DeviceControl/AcquireLease", Role::kOperator},
    {"/derma.v1.DeviceControl/RenewLease", Role::kOperator},
    {"/derma.v1.DeviceControl/ReleaseLease", Role::kOperator},
    {"/derma.v1.DeviceControl/Configure", Role::kOperator},
    {"/derma.v1.DeviceControl/Start", Role::kOperator},
    {"/derma.v1.DeviceControl/Pause", Role::kOperator},
    {"/derma.v1.DeviceControl/Resume", Role::kOperator},
    {"/derma.v1.DeviceControl/Stop", Role::kOperator},
    {"/derma.v1.DeviceControl/ResetFault", Role::kOperator},
    {"/derma.v1.DeviceControl/StartRun", Role::kOperator},
    {"/derma.v1.DeviceControl/CancelRun", Role::kOperator},
    // Clearing an emergency stop is an admin decision.
    {"/derma.v1.DeviceControl/ResetEmergencyStop", Role::kAdmin},
    // Who did what is for admins.
    {"/derma.v1.DeviceControl/ListAuditEvents", Role::kAdmin},
    {"/derma.v1.DeviceControl/VerifyAuditTrail", Role::kAdmin},
    // The simulator.
    {"/derma.sim.v1.Simulator/InjectFault", Role::kAdmin},
    {"/derma.sim.v1.Simulator/ClearFault", Role::kAdmin},
    {"/derma.sim.v1.Simulator/SetElectrodeImpedance", Role::kAdmin},
    {"/derma.sim.v1.Simulator/SetLink", Role::kAdmin},
    {"/derma.sim.v1.Simulator/AdvanceClock", Role::kAdmin},
    {"/derma.sim.v1.Simulator/LoadScenario", Role::kAdmin},
    {"/derma.sim.v1.Simulator/SetTransportFault", Role::kAdmin},
};

}  // namespace

std::string RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> ParseRole(absl::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::optional<Role> RequiredRole(absl::string_view method) {
  static const auto* table = [] {
    auto* map = new absl::flat_hash_map<std::string, Role>();
    for (const auto& [name, role] : kTable) map->emplace(name, role);
    return map;
  }();
  if (method == "/grpc.health.v1.Health/Check" || method == "/grpc.health.v1.Health/Watch") {
    return std::nullopt;  // probes carry no credentials
  }
  auto it = table->find(method);
  return it == table->end() ? Role::kAdmin : it->second;
}

std::vector<std::string> KnownMethods() {
  std::vector<std::string> out;
  for (const auto& [name, role] : kTable) out.push_back(name);
  return out;
}

}  // namespace derma::auth
