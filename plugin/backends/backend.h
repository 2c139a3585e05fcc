// Backend: the unit of extension for hardware. A backend builds the drivers of the devices
// whose config names it and may contribute its own gRPC services and metrics; the registry
// (registry.h) keys backends by the config's `Backend`. A new backend is one folder under
// plugin/backends/ (or sim/ for the simulator) plus one line in registry.cc. Layer:
// plugin/backends, beside the core: the host wires a backend's drivers into the fleet; a
// backend's drivers depend only on plugin/driver.h and plugin/errors. Thread-safety: built and
// attached by the host on one thread; OnTick, BeforeEmergencyStopAll and the services' calls
// come from any thread (each backend says how it copes).
#ifndef DERMA_PLUGIN_BACKENDS_BACKEND_H_
#define DERMA_PLUGIN_BACKENDS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "grpcpp/impl/service_type.h"
#include "plugin/driver.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace derma {
namespace auth {
class Authorizer;
}  // namespace auth
namespace service {
class CallAudit;
}  // namespace service

// One device a backend built.
struct BackendDevice {
  size_t config_index = 0;  // position in the expanded fleet config (ExpandFleet)
  std::string id;
  std::unique_ptr<Driver> driver;
  // Devices with the same non-empty lane share one dedicated I/O thread (a serial bus, a TCP
  // connection): their blocking hooks never hold a gRPC thread, a simulated device or another
  // lane. Empty: the fleet's executor pool (drivers that never block).
  std::string lane;
  // Lane devices: the lane polls back to back (as fast as the link answers) instead of once per
  // sample period. The first device of a lane decides.
  bool back_to_back = false;
};

// What a backend may do with the fleet once it is built. Implemented by the host over the
// device manager; thread-safe.
class FleetAccess {
 public:
  virtual ~FleetAccess() = default;
  // Index of "devices/{id}": INVALID_FIELD (naming `field`) or DEVICE_NOT_FOUND.
  virtual absl::StatusOr<uint32_t> Find(absl::string_view name,
                                        absl::string_view field = "name") const = 0;
  // Runs `task` on the device's strand, with the fleet clock's time when it runs.
  virtual void RunOnStrand(uint32_t index, absl::AnyInvocable<void(absl::Time now) &&> task) = 0;
  virtual absl::Time Now() const = 0;
  // Queues `task` urgently on the thread of a lane named in BackendDevice::lane, ahead of its
  // commands and polls (behind other urgent work): for work that must run on that link's
  // thread, such as a bus-wide stop broadcast. False when there is no such lane.
  virtual bool RunOnLaneUrgently(const std::string& lane, absl::AnyInvocable<void() &&> task) = 0;
  // Advances the virtual clock and ticks every device through `delta`; `done` gets the new
  // time. VIRTUAL_CLOCK_REQUIRED on a real clock.
  virtual void AdvanceClock(absl::Duration delta,
                            absl::AnyInvocable<void(absl::StatusOr<absl::Time>) &&> done) = 0;
};

// What a backend's gRPC services may use: the plugin's authorization and audit.
struct ServiceContext {
  const auth::Authorizer& auth;
  const service::CallAudit& audit;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // The drivers built at creation, once.
  virtual std::vector<BackendDevice> TakeDevices() = 0;
  // The fleet is built: `indices[i]` is the device index of the i-th device TakeDevices gave.
  virtual void Attach(FleetAccess& fleet, std::vector<uint32_t> indices) {}
  // Before every tick round of the fleet, at its time.
  virtual void OnTick(absl::Time now) {}
  // EmergencyStop of every device is about to be queued (urgent) on the devices' strands.
  virtual void BeforeEmergencyStopAll() {}
  // gRPC services this backend contributes (registered with DeviceControl's).
  virtual std::vector<std::unique_ptr<grpc::Service>> MakeServices(const ServiceContext& context) {
    return {};
  }
  // Metrics this backend exports, or null.
  virtual std::shared_ptr<prometheus::Collectable> Metrics() { return nullptr; }
};

// Everything a backend's factory gets: the whole fleet config (clock, seeds) and the expanded
// configs of the devices that name it, with their positions.
struct BackendConfig {
  const config::v1::FleetConfig& fleet;
  std::vector<std::pair<size_t, config::v1::DeviceConfig>> devices;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_BACKENDS_BACKEND_H_
