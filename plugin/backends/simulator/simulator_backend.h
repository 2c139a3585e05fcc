// The simulator as a backend: builds a sim/ model for each device that names
// BACKEND_SIMULATOR, runs the simulator controls over the fleet (each action on the device's
// strand) and contributes derma.sim.v1.Simulator. Layer: plugin/backends/simulator (the
// models and controls themselves are in sim/). Thread-safe after Attach.
#ifndef DERMA_PLUGIN_BACKENDS_SIMULATOR_SIMULATOR_BACKEND_H_
#define DERMA_PLUGIN_BACKENDS_SIMULATOR_SIMULATOR_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "plugin/backends/backend.h"
#include "sim/simulator_control.h"

namespace derma {

// The simulator controls of a built fleet, or null before Attach.
sim::SimulatorControl* SimulatorControlOf(Backend& backend);

// Every problem of the simulated devices' setup (model, overrides, pen and stimulator setup)
// in one pass, by building each device's model once (a group's once): INVALID_FIELD listing
// each, or OK.
absl::Status ValidateSimulatedFleet(const config::v1::FleetConfig& fleet);

absl::StatusOr<std::unique_ptr<Backend>> CreateSimulatorBackend(const BackendConfig& config);

}  // namespace derma

#endif  // DERMA_PLUGIN_BACKENDS_SIMULATOR_SIMULATOR_BACKEND_H_
