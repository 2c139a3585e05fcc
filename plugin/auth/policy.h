// The one authorization table of derma: every RPC → the least role that may call it.
// Roles are ordered viewer < operator < admin: viewers read, stream telemetry and see run
// history; operators also take leases, configure, start and stop devices and run programs;
// admins also control the simulator and reset emergency stops. EmergencyStop is allowed for
// every authenticated role. Layer: plugin/auth. Thread-safe (pure functions).
#ifndef DERMA_PLUGIN_AUTH_POLICY_H_
#define DERMA_PLUGIN_AUTH_POLICY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace derma::auth {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };

// "viewer", "operator", "admin".
std::string RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view name);

// The least role for `method` ("/derma.v1.DeviceControl/Configure"); nullopt for a method
// anyone may call without credentials (grpc.health.v1). Methods the table does not know need
// admin.
std::optional<Role> RequiredRole(absl::string_view method);

// Every method in the table, for tests and documentation.
std::vector<std::string> KnownMethods();

}  // namespace derma::auth

#endif  // DERMA_PLUGIN_AUTH_POLICY_H_
