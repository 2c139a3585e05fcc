// SimulatorControl: what the derma.sim.v1.Simulator service does, without gRPC — fault
// injection, skin impedance, link, virtual clock and scenario playback for a fleet of
// simulated devices. Every device action runs on that device's strand; scenario actions are
// dispatched from the tick hook so they happen at their exact (virtual) time, before the
// devices tick. Layer: plugin/host. Thread-safe.
#ifndef DERMA_PLUGIN_HOST_SIMULATOR_CONTROL_H_
#define DERMA_PLUGIN_HOST_SIMULATOR_CONTROL_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "derma/sim/v1/simulator.pb.h"
#include "plugin/core/clock.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/fleet_clock.h"
#include "sim/scenario.h"
#include "sim/sim_device.h"

namespace derma::host {

using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;

class SimulatorControl {
 public:
  // `sim_devices[i]` is the simulator behind device index i (nullptr when not simulated).
  // `virtual_time` is null on a real clock.
  SimulatorControl(DeviceManager& devices, std::vector<sim::SimDevice*> sim_devices,
                   const Clock& clock, VirtualTimeDriver* virtual_time);

  // Each resolves the device name, then runs on the device's strand; `done` gets the result
  // (DEVICE_NOT_FOUND, INVALID_FIELD, NOT_SIMULATED, FAULT_NOT_APPLICABLE, ...).
  void InjectFault(const sim::v1::InjectFaultRequest& request, StatusCallback done);
  void ClearFault(const sim::v1::ClearFaultRequest& request, StatusCallback done);
  void SetElectrodeImpedance(const sim::v1::SetElectrodeImpedanceRequest& request,
                             StatusCallback done);
  void SetLink(const sim::v1::SetLinkRequest& request, StatusCallback done);

  // Advances the virtual clock; `done` gets the new time once every device reached it.
  // VIRTUAL_CLOCK_REQUIRED on a real clock, INVALID_FIELD for duration_s outside (0, 86400].
  void AdvanceClock(double duration_s,
                    absl::AnyInvocable<void(absl::StatusOr<absl::Time>) &&> done);
  // Parses and validates the scenario, schedules its actions from now. Returns the action
  // count. SCENARIO_INVALID with line numbers or field paths.
  absl::StatusOr<size_t> LoadScenario(const sim::v1::LoadScenarioRequest& request);

  // Tick hook: dispatches every scenario action due at `now`.
  void OnTick(absl::Time now);

 private:
  void OnDevice(const std::string& name,
                absl::AnyInvocable<absl::Status(sim::SimDevice&, absl::Time) &&> action,
                StatusCallback done);
  void Dispatch(const sim::v1::ScenarioAction& action);

  DeviceManager& devices_;
  const std::vector<sim::SimDevice*> sim_devices_;
  const Clock& clock_;
  VirtualTimeDriver* const virtual_time_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<sim::ScenarioPlayer>> players_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_SIMULATOR_CONTROL_H_
