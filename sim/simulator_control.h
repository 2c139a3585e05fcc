// SimulatorControl: what the derma.sim.v1.Simulator service does, without gRPC — fault
// injection, skin impedance, link, virtual clock and scenario playback for a set of simulated
// devices. It reaches the devices through a SimDeviceHost: dermad's fleet runs each action on
// the device's strand; the Modbus device emulator under its own lock. Scenario actions are
// dispatched from the tick hook so they happen at their exact (virtual) time, before the
// devices tick. Layer: sim/ (the simulator backend's domain logic; the gRPC adapter is in
// plugin/service). Thread-safe.
#ifndef DERMA_SIM_SIMULATOR_CONTROL_H_
#define DERMA_SIM_SIMULATOR_CONTROL_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "derma/sim/v1/simulator.pb.h"
#include "sim/scenario.h"
#include "sim/sim_device.h"

namespace derma::sim {

using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
using DeviceAction = absl::AnyInvocable<absl::Status(SimDevice&, absl::Time) &&>;
using ClockCallback = absl::AnyInvocable<void(absl::StatusOr<absl::Time>) &&>;

// Where the simulated devices live. Implementations are thread-safe.
class SimDeviceHost {
 public:
  virtual ~SimDeviceHost() = default;
  // Runs `action` on the simulated device named `name` ("devices/{id}") where it may be
  // touched, at the device's current time, and gives `done` its result; or gives `done` the
  // error: INVALID_FIELD (malformed name), DEVICE_NOT_FOUND, NOT_SIMULATED (another backend).
  virtual void RunOnDevice(absl::string_view name, DeviceAction action, StatusCallback done) = 0;
  // True when `name` is a device the host knows (scenario validation).
  virtual bool HasDevice(absl::string_view name) const = 0;
  // The devices' current time.
  virtual absl::Time Now() const = 0;
  // Sets the transport fault of device `name` (a validated request). Default: no transport
  // (dermad's in-process simulator): FAILED_PRECONDITION, reason FAULT_NOT_APPLICABLE.
  virtual void SetTransportFault(const sim::v1::SetTransportFaultRequest& request,
                                 StatusCallback done);
  // Advances the virtual clock by `delta` (validated) and ticks every device through it;
  // `done` gets the new time. VIRTUAL_CLOCK_REQUIRED on a real clock.
  virtual void AdvanceClock(absl::Duration delta, ClockCallback done) = 0;
};

// VIRTUAL_CLOCK_REQUIRED: what AdvanceClock answers on a real clock.
absl::Status VirtualClockRequired();

class SimulatorControl {
 public:
  explicit SimulatorControl(SimDeviceHost& host) : host_(host) {}

  // Each checks the request's fields (sim/fault_requests.h: INVALID_FIELD naming `kind`, ...),
  // resolves the device name, then runs on the device's strand; `done` gets the result
  // (DEVICE_NOT_FOUND, INVALID_FIELD, NOT_SIMULATED, FAULT_NOT_APPLICABLE, ...).
  void InjectFault(const sim::v1::InjectFaultRequest& request, StatusCallback done);
  void ClearFault(const sim::v1::ClearFaultRequest& request, StatusCallback done);
  void SetElectrodeImpedance(const sim::v1::SetElectrodeImpedanceRequest& request,
                             StatusCallback done);
  void SetLink(const sim::v1::SetLinkRequest& request, StatusCallback done);
  void SetTransportFault(const sim::v1::SetTransportFaultRequest& request, StatusCallback done);

  // Advances the virtual clock; `done` gets the new time once every device reached it.
  // VIRTUAL_CLOCK_REQUIRED on a real clock, INVALID_FIELD for duration_s outside (0, 86400].
  void AdvanceClock(double duration_s, ClockCallback done);
  // Parses and validates the scenario, schedules its actions from now. Returns the action
  // count. SCENARIO_INVALID with line numbers or field paths.
  absl::StatusOr<size_t> LoadScenario(const sim::v1::LoadScenarioRequest& request);

  // Tick hook: dispatches every scenario action due at `now`.
  void OnTick(absl::Time now);

 private:
  void Dispatch(const sim::v1::ScenarioAction& action);

  SimDeviceHost& host_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<sim::ScenarioPlayer>> players_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::sim

#endif  // DERMA_SIM_SIMULATOR_CONTROL_H_
