#include "plugin/host/fleet.h"

#include <utility>

#include "absl/hash/hash.h"
#include "plugin/host/config_loader.h"
#include "sim/registry.h"

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
  for (const config::v1::DeviceConfig& device : ExpandFleet(config)) {
    // Each device's noise depends only on the fleet seed and its id, not on fleet order.
    sim::SimDeviceSpec spec{device, config.sim_seed() ^ absl::HashOf(device.id())};
    absl::StatusOr<std::unique_ptr<sim::SimDevice>> driver = sim::CreateSimDevice(spec);
    if (!driver.ok()) return driver.status();
    sim_devices_.push_back(driver->get());
    if (absl::Status s = devices_->AddDevice(device.id(), *std::move(driver)); !s.ok()) return s;
  }
  devices_->InitializeAll();
  if (virtual_clock_ != nullptr) {
    virtual_time_ =
        std::make_unique<VirtualTimeDriver>(*virtual_clock_, *devices_, sample_period_,
                                            [this](absl::Time now) { simulator_->OnTick(now); });
  }
  simulator_ =
      std::make_unique<SimulatorControl>(*devices_, sim_devices_, *clock_, virtual_time_.get());
  return absl::OkStatus();
}

Fleet::~Fleet() {
  Shutdown();
  // Join the pool before the devices and strands it runs go away.
  ticker_.reset();
  executor_.reset();
}

void Fleet::Start() {
  if (virtual_clock_ != nullptr || ticker_ != nullptr) return;
  ticker_ = std::make_unique<RealTimeTicker>(static_cast<const RealClock&>(*clock_), *devices_,
                                             sample_period_,
                                             [this](absl::Time now) { simulator_->OnTick(now); });
  ticker_->Start();
}

void Fleet::Shutdown() {
  if (shut_down_ || devices_ == nullptr) return;
  shut_down_ = true;
  if (ticker_ != nullptr) ticker_->Stop();
  devices_->Wait([this](Done done) { devices_->ShutdownAll(std::move(done)); });
}

}  // namespace derma::host
