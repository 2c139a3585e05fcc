// Fleet: a configured, running set of devices — what the plugin embeds into a host. Builds
// the clock, the executor pool, telemetry fan-out, run registry, every device with its driver
// (the simulator backend for now) and the ticker from a FleetConfig, owns them, and starts and
// shuts them down in order. Layer: plugin/host (the only place objects are wired and threads
// started). Thread-safe after Create.
#ifndef DERMA_PLUGIN_HOST_FLEET_H_
#define DERMA_PLUGIN_HOST_FLEET_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/core/clock.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/executor.h"
#include "plugin/core/fleet_clock.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/host/simulator_control.h"

namespace derma::host {

class Fleet {
 public:
  // Validates the config and builds every device (connected, IDLE). Nothing ticks until
  // Start. INVALID_ARGUMENT (reason INVALID_FIELD) listing every config problem.
  static absl::StatusOr<std::unique_ptr<Fleet>> Create(const config::v1::FleetConfig& config);
  ~Fleet();  // Shutdown()

  // Starts the real-time ticker (no-op on a virtual clock: time moves by AdvanceClock).
  void Start();
  // Stops ticking and turns every output off (runs end with SHUTDOWN); waits. Idempotent.
  void Shutdown();

  DeviceManager& devices() { return *devices_; }
  TelemetryFanout& telemetry() { return fanout_; }
  RunRegistry& runs() { return runs_; }
  const Clock& clock() const { return *clock_; }
  // Simulator controls; every device is simulated today.
  SimulatorControl& simulator() { return *simulator_; }
  absl::Duration sample_period() const { return sample_period_; }

 private:
  Fleet() = default;
  absl::Status Build(const config::v1::FleetConfig& config);

  std::unique_ptr<Clock> clock_;
  VirtualClock* virtual_clock_ = nullptr;  // set in virtual mode; owned by clock_
  std::unique_ptr<ThreadPoolExecutor> executor_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<DeviceManager> devices_;
  std::vector<sim::SimDevice*> sim_devices_;  // by device index; owned by the devices
  std::unique_ptr<SimulatorControl> simulator_;
  std::unique_ptr<RealTimeTicker> ticker_;
  std::unique_ptr<VirtualTimeDriver> virtual_time_;
  absl::Duration sample_period_;
  bool shut_down_ = false;
};

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_FLEET_H_
