#include "plugin/host/fleet.h"

#include <algorithm>
#include <utility>

#include "plugin/backends/registry.h"
#include "plugin/backends/simulator/simulator_backend.h"
#include "plugin/host/config_loader.h"

namespace derma::host {

absl::StatusOr<std::unique_ptr<Fleet>> Fleet::Create(const config::v1::FleetConfig& config) {
  if (absl::Status s = ValidateFleetConfig(config); !s.ok()) return s;
  std::unique_ptr<Fleet> fleet(new Fleet());
  if (absl::Status s = fleet->Build(config); !s.ok()) return s;
  return fleet;
}

absl::Status Fleet::Build(const config::v1::FleetConfig& config) {
  if (config.clock().mode() == config::v1::CLOCK_MODE_VIRTUAL) {
    auto clock = std::make_unique<VirtualClock>();
    virtual_clock_ = clock.get();
    clock_ = std::move(clock);
  } else {
    clock_ = std::make_unique<RealClock>(EffectiveSpeedFactor(config));
  }
  sample_period_ = absl::Seconds(1.0 / EffectiveSampleRateHz(config));
  executor_ = std::make_unique<ThreadPoolExecutor>(config.executor_threads());
  devices_ = std::make_unique<DeviceManager>(*executor_, DeviceContext{*clock_, fanout_, runs_});
  if (absl::Status s = BuildBackends(config); !s.ok()) return s;
  devices_->set_before_emergency_stop_all([this] {
    for (const std::unique_ptr<Backend>& backend : backends_) backend->BeforeEmergencyStopAll();
  });
  devices_->InitializeAll();
  if (virtual_clock_ != nullptr) {
    virtual_time_ = std::make_unique<VirtualTimeDriver>(*virtual_clock_, *devices_, sample_period_,
                                                        [this](absl::Time now) { OnTick(now); });
  }
  return absl::OkStatus();
}

// Devices are added in config order, whichever backend built them.
absl::Status Fleet::BuildBackends(const config::v1::FleetConfig& config) {
  const std::vector<config::v1::DeviceConfig> expanded = ExpandFleet(config);
  struct Slot {
    BackendDevice device;
    size_t backend = 0;
  };
  std::vector<Slot> slots;
  for (const BackendRegistration& registration : RegisteredBackends()) {
    BackendConfig backend_config{config, {}};
    for (size_t i = 0; i < expanded.size(); ++i) {
      if (EffectiveBackend(expanded[i]) == registration.backend) {
        backend_config.devices.emplace_back(i, expanded[i]);
      }
    }
    if (backend_config.devices.empty()) continue;
    absl::StatusOr<std::unique_ptr<Backend>> backend = registration.create(backend_config);
    if (!backend.ok()) return backend.status();
    for (BackendDevice& device : (*backend)->TakeDevices()) {
      slots.push_back({std::move(device), backends_.size()});
    }
    backends_.push_back(*std::move(backend));
  }
  std::sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& b) {
    return a.device.config_index < b.device.config_index;
  });
  std::vector<std::vector<uint32_t>> indices(backends_.size());
  for (Slot& slot : slots) {
    LinkExecutor* link = nullptr;
    if (!slot.device.lane.empty()) {
      std::unique_ptr<LinkExecutor>& lane = lanes_[slot.device.lane];
      if (lane == nullptr) {
        lane = std::make_unique<LinkExecutor>(slot.device.lane, slot.device.back_to_back);
      }
      link = lane.get();
    }
    indices[slot.backend].push_back(static_cast<uint32_t>(devices_->size()));
    absl::Status s = devices_->AddDevice(slot.device.id, std::move(slot.device.driver), link);
    if (!s.ok()) return s;
  }
  for (size_t b = 0; b < backends_.size(); ++b) backends_[b]->Attach(*this, indices[b]);
  return absl::OkStatus();
}

Fleet::~Fleet() {
  Shutdown();
  // Join the pool and the lanes before the devices and strands they run go away.
  ticker_.reset();
  executor_.reset();
  lanes_.clear();
}

sim::SimulatorControl* Fleet::simulator() const {
  for (const std::unique_ptr<Backend>& backend : backends_) {
    if (sim::SimulatorControl* control = SimulatorControlOf(*backend)) return control;
  }
  return nullptr;
}

absl::StatusOr<uint32_t> Fleet::Find(absl::string_view name, absl::string_view field) const {
  return devices_->Find(name, field);
}

bool Fleet::RunOnLaneUrgently(const std::string& lane, absl::AnyInvocable<void() &&> task) {
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return false;
  it->second->ScheduleUrgent(std::move(task));
  return true;
}

void Fleet::RunOnStrand(uint32_t index, absl::AnyInvocable<void(absl::Time now) &&> task) {
  devices_->Post(
      index, [this, task = std::move(task)](Device&) mutable { std::move(task)(clock_->Now()); });
}

void Fleet::AdvanceClock(absl::Duration delta,
                         absl::AnyInvocable<void(absl::StatusOr<absl::Time>) &&> done) {
  if (virtual_time_ == nullptr) {
    std::move(done)(sim::VirtualClockRequired());
    return;
  }
  virtual_time_->Advance(
      delta, [done = std::move(done)](absl::Time now) mutable { std::move(done)(now); });
}

void Fleet::OnTick(absl::Time now) {
  for (const std::unique_ptr<Backend>& backend : backends_) backend->OnTick(now);
}

void Fleet::Start() {
  if (virtual_clock_ != nullptr || ticker_ != nullptr) return;
  for (auto& [name, lane] : lanes_) lane->StartPolling();
  ticker_ =
      std::make_unique<RealTimeTicker>(static_cast<const RealClock&>(*clock_), *devices_,
                                       sample_period_, [this](absl::Time now) { OnTick(now); });
  ticker_->Start();
}

void Fleet::Shutdown() {
  if (shut_down_ || devices_ == nullptr) return;
  shut_down_ = true;
  if (ticker_ != nullptr) ticker_->Stop();
  devices_->Wait([this](Done done) { devices_->ShutdownAll(std::move(done)); });
}

}  // namespace derma::host
