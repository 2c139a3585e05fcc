// The backend registry: every backend derma can drive devices through, keyed by the config's
// `Backend`. Adding a backend is one folder plus one line in RegisteredBackends()
// (registry.cc). Layer: plugin/backends. Thread-safe (immutable data).
#ifndef DERMA_PLUGIN_BACKENDS_REGISTRY_H_
#define DERMA_PLUGIN_BACKENDS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/backends/backend.h"

namespace derma {

struct BackendRegistration {
  config::v1::Backend backend;
  std::string name;  // for messages, e.g. "simulator"
  // Checks this backend's part of the fleet config, every problem at once (INVALID_ARGUMENT,
  // INVALID_FIELD, one BadRequest violation per problem), or OK; called for every config, also
  // one without this backend's devices (it may still name this backend's fields). Optional.
  absl::Status (*validate_fleet)(const config::v1::FleetConfig& fleet);
  // Builds the drivers of `config.devices`. INVALID_ARGUMENT (INVALID_FIELD) naming the field.
  absl::StatusOr<std::unique_ptr<Backend>> (*create)(const BackendConfig& config);
};

// Every registered backend.
const std::vector<BackendRegistration>& RegisteredBackends();

// The backend a device config names (BACKEND_UNSPECIFIED is the simulator).
config::v1::Backend EffectiveBackend(const config::v1::DeviceConfig& device);

}  // namespace derma

#endif  // DERMA_PLUGIN_BACKENDS_REGISTRY_H_
