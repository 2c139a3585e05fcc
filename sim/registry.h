// The simulated device kinds, registered explicitly: a new kind is one sim/<kind>.cc plus one
// line in SimKinds() (registry.cc). Layer: sim/. Thread-safe (immutable data).
#ifndef DERMA_SIM_REGISTRY_H_
#define DERMA_SIM_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "sim/sim_device.h"

namespace derma::sim {

// Everything a sim factory needs to build one device.
struct SimDeviceSpec {
  derma::config::v1::DeviceConfig config;  // id, kind, model, serial, overrides, setup
  uint64_t seed = 0;                       // noise seed (fleet seed mixed with the device id)
};

struct SimKind {
  derma::v1::DeviceKind kind;
  std::string default_model;
  std::vector<std::string> models;  // catalogue of model names this kind offers
  // Builds a device; INVALID_ARGUMENT (reason INVALID_FIELD, naming the field) for an unknown
  // model or a bad override / setup.
  std::function<absl::StatusOr<std::unique_ptr<SimDevice>>(const SimDeviceSpec&)> create;
};

// Every registered simulated kind.
const std::vector<SimKind>& SimKinds();

// Builds a simulated device for `spec.config.kind`. INVALID_ARGUMENT for an unknown kind.
absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimDevice(const SimDeviceSpec& spec);

}  // namespace derma::sim

#endif  // DERMA_SIM_REGISTRY_H_
