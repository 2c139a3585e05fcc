// Fleet: a configured, running set of devices — what the plugin embeds into a host. Builds
// the clock, the executor pool, telemetry fan-out, run registry, the backends named by the
// config (plugin/backends/registry.h) with every device's driver, one I/O thread per lane of
// devices that block (a serial bus, a TCP link), and the ticker; owns them, and starts and
// shuts them down in order. Layer: plugin/host (the only place objects are wired and threads
// started). Thread-safe after Create.
#ifndef DERMA_PLUGIN_HOST_FLEET_H_
#define DERMA_PLUGIN_HOST_FLEET_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/backends/backend.h"
#include "plugin/core/clock.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/executor.h"
#include "plugin/core/fleet_clock.h"
#include "plugin/core/link_executor.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"
#include "sim/simulator_control.h"

namespace derma::host {

class Fleet : public FleetAccess {
 public:
  // Validates the config and builds every device (connected, IDLE; OFFLINE when its link is
  // down). Nothing ticks until Start. INVALID_ARGUMENT (reason INVALID_FIELD) listing every
  // config problem.
  static absl::StatusOr<std::unique_ptr<Fleet>> Create(const config::v1::FleetConfig& config);
  ~Fleet() override;  // Shutdown()

  // Starts the real-time ticker (no-op on a virtual clock: time moves by AdvanceClock).
  void Start();
  // Stops ticking and turns every output off (runs end with SHUTDOWN); waits. Idempotent.
  void Shutdown();

  DeviceManager& devices() { return *devices_; }
  TelemetryFanout& telemetry() { return fanout_; }
  RunRegistry& runs() { return runs_; }
  const Clock& clock() const { return *clock_; }
  // The backends with devices in this fleet.
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
  // The simulator backend's controls; null when the fleet has no simulated device.
  sim::SimulatorControl* simulator() const;
  absl::Duration sample_period() const { return sample_period_; }

  // FleetAccess, for the backends.
  absl::StatusOr<uint32_t> Find(absl::string_view name, absl::string_view field) const override;
  void RunOnStrand(uint32_t index, absl::AnyInvocable<void(absl::Time now) &&> task) override;
  absl::Time Now() const override { return clock_->Now(); }
  bool RunOnLaneUrgently(const std::string& lane, absl::AnyInvocable<void() &&> task) override;
  void AdvanceClock(absl::Duration delta,
                    absl::AnyInvocable<void(absl::StatusOr<absl::Time>) &&> done) override;

 private:
  Fleet() = default;
  absl::Status Build(const config::v1::FleetConfig& config);
  absl::Status BuildBackends(const config::v1::FleetConfig& config);
  void OnTick(absl::Time now);

  std::unique_ptr<Clock> clock_;
  VirtualClock* virtual_clock_ = nullptr;  // set in virtual mode; owned by clock_
  std::unique_ptr<ThreadPoolExecutor> executor_;
  std::map<std::string, std::unique_ptr<LinkExecutor>> lanes_;  // one thread each
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<DeviceManager> devices_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<RealTimeTicker> ticker_;
  std::unique_ptr<VirtualTimeDriver> virtual_time_;
  absl::Duration sample_period_;
  bool shut_down_ = false;
};

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_FLEET_H_
