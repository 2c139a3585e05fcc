#include "plugin/backends/simulator/simulator_backend.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "plugin/backends/registry.h"
#include "plugin/errors/errors.h"
#include "plugin/service/simulator_service.h"
#include "sim/registry.h"

namespace derma {
namespace {

// The fleet's simulated devices for SimulatorControl: actions run on the device's strand.
class FleetSimDevices : public sim::SimDeviceHost {
 public:
  FleetSimDevices(FleetAccess& fleet, absl::flat_hash_map<uint32_t, sim::SimDevice*> by_index)
      : fleet_(fleet), by_index_(std::move(by_index)) {}

  void RunOnDevice(absl::string_view name, sim::DeviceAction action,
                   sim::StatusCallback done) override {
    absl::StatusOr<uint32_t> index = fleet_.Find(name);
    if (!index.ok()) {
      std::move(done)(index.status());
      return;
    }
    auto it = by_index_.find(*index);
    if (it == by_index_.end()) {
      std::move(done)(MakeError(
          absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_NOT_SIMULATED,
          absl::StrCat(name, " is not backed by the simulator"), {{"device", std::string(name)}}));
      return;
    }
    sim::SimDevice* device = it->second;
    fleet_.RunOnStrand(
        *index, [device, action = std::move(action), done = std::move(done)](
                    absl::Time now) mutable { std::move(done)(std::move(action)(*device, now)); });
  }
  bool HasDevice(absl::string_view name) const override { return fleet_.Find(name).ok(); }
  absl::Time Now() const override { return fleet_.Now(); }
  void AdvanceClock(absl::Duration delta, sim::ClockCallback done) override {
    fleet_.AdvanceClock(delta, std::move(done));
  }

 private:
  FleetAccess& fleet_;
  const absl::flat_hash_map<uint32_t, sim::SimDevice*> by_index_;
};

class SimulatorBackend : public Backend {
 public:
  explicit SimulatorBackend(std::vector<BackendDevice> devices, std::vector<sim::SimDevice*> models)
      : devices_(std::move(devices)), models_(std::move(models)) {}

  std::vector<BackendDevice> TakeDevices() override { return std::move(devices_); }

  void Attach(FleetAccess& fleet, std::vector<uint32_t> indices) override {
    absl::flat_hash_map<uint32_t, sim::SimDevice*> by_index;
    for (size_t i = 0; i < indices.size(); ++i) by_index[indices[i]] = models_[i];
    host_ = std::make_unique<FleetSimDevices>(fleet, std::move(by_index));
    control_ = std::make_unique<sim::SimulatorControl>(*host_);
  }

  void OnTick(absl::Time now) override {
    if (control_ != nullptr) control_->OnTick(now);
  }

  std::vector<std::unique_ptr<grpc::Service>> MakeServices(const ServiceContext& context) override {
    std::vector<std::unique_ptr<grpc::Service>> out;
    out.push_back(
        std::make_unique<service::SimulatorService>(*control_, context.auth, context.audit));
    return out;
  }

  sim::SimulatorControl* control() { return control_.get(); }

 private:
  std::vector<BackendDevice> devices_;
  std::vector<sim::SimDevice*> models_;  // owned by the drivers, in TakeDevices order
  std::unique_ptr<FleetSimDevices> host_;
  std::unique_ptr<sim::SimulatorControl> control_;
};

}  // namespace

sim::SimulatorControl* SimulatorControlOf(Backend& backend) {
  auto* simulator = dynamic_cast<SimulatorBackend*>(&backend);
  return simulator == nullptr ? nullptr : simulator->control();
}

absl::Status ValidateSimulatedFleet(const config::v1::FleetConfig& fleet) {
  std::vector<FieldViolation> problems;
  // A group's devices share one config: building its first is enough.
  auto check = [&problems](const config::v1::DeviceConfig& device) {
    if (EffectiveBackend(device) != config::v1::BACKEND_SIMULATOR) return;
    const bool pen = device.kind() == v1::DEVICE_KIND_MICRONEEDLING;
    const bool stimulator = device.kind() == v1::DEVICE_KIND_MICROCURRENT;
    if ((!pen && !stimulator) || (device.has_pen() && !pen) ||
        (device.has_stimulator() && !stimulator)) {
      return;  // reported by the fleet's own checks (config_loader.cc)
    }
    absl::Status built = sim::CreateSimDevice({device, 0}).status();
    if (built.ok()) return;
    std::vector<FieldViolation> violations = ViolationsOf(built);
    if (violations.empty()) violations.push_back({"", std::string(built.message())});
    for (FieldViolation& v : violations) problems.push_back(std::move(v));
  };
  for (const config::v1::DeviceConfig& device : fleet.devices()) check(device);
  for (const config::v1::DeviceGroup& group : fleet.groups()) {
    config::v1::DeviceConfig first = group.device();
    first.set_id(absl::StrCat(group.id_prefix(), 1));
    check(first);
  }
  if (problems.empty()) return absl::OkStatus();
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(problems[0].field, ": ", problems[0].description), {}, problems);
}

absl::StatusOr<std::unique_ptr<Backend>> CreateSimulatorBackend(const BackendConfig& config) {
  std::vector<BackendDevice> devices;
  std::vector<sim::SimDevice*> models;
  for (const auto& [index, device] : config.devices) {
    // Each device's noise depends only on the fleet seed and its id, not on fleet order.
    sim::SimDeviceSpec spec{device, config.fleet.sim_seed() ^ absl::HashOf(device.id())};
    absl::StatusOr<std::unique_ptr<sim::SimDevice>> driver = sim::CreateSimDevice(spec);
    if (!driver.ok()) return driver.status();
    models.push_back(driver->get());
    devices.push_back({index, device.id(), *std::move(driver), ""});
  }
  return std::make_unique<SimulatorBackend>(std::move(devices), std::move(models));
}

}  // namespace derma
