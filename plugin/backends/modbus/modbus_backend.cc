#include "plugin/backends/modbus/modbus_backend.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "plugin/backends/modbus/link_collector.h"
#include "plugin/backends/modbus/link_metrics.h"
#include "plugin/backends/modbus/modbus_driver.h"
#include "plugin/backends/modbus/modbus_link.h"

namespace derma::modbus {
namespace {

// The lane (I/O thread) of a link: its name shows in debuggers as the thread's.
std::string LaneOf(const std::string& link) { return "modbus-" + link; }

class ModbusBackend : public Backend {
 public:
  struct Link {
    std::unique_ptr<LinkMetrics> metrics;
    std::unique_ptr<ModbusLink> link;
  };

  ModbusBackend(std::map<std::string, Link> links, std::vector<BackendDevice> devices)
      : links_(std::move(links)), devices_(std::move(devices)) {
    std::vector<const LinkMetrics*> metrics;
    for (const auto& [name, link] : links_) metrics.push_back(link.metrics.get());
    collector_ = std::make_shared<LinkCollector>(std::move(metrics));
  }

  std::vector<BackendDevice> TakeDevices() override { return std::move(devices_); }

  void Attach(FleetAccess& fleet, std::vector<uint32_t> indices) override { fleet_ = &fleet; }

  // One broadcast per RTU bus, queued urgent on the bus's thread ahead of the devices' own
  // stops, which then only confirm (ModbusDriver::EmergencyStop).
  void BeforeEmergencyStopAll() override {
    for (auto& [name, link] : links_) {
      if (!link.link->settings().rtu) continue;
      if (fleet_ == nullptr) continue;
      ModbusLink* wire = link.link.get();
      fleet_->RunOnLaneUrgently(LaneOf(name), [wire] { wire->BroadcastEmergencyStop(); });
    }
  }

  std::shared_ptr<prometheus::Collectable> Metrics() override { return collector_; }

 private:
  std::map<std::string, Link> links_;
  std::vector<BackendDevice> devices_;
  std::shared_ptr<LinkCollector> collector_;
  FleetAccess* fleet_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateModbusBackend(const BackendConfig& config) {
  std::map<std::string, ModbusBackend::Link> links;
  for (const config::v1::ModbusLink& link : config.fleet.modbus_links()) {
    ModbusBackend::Link& entry = links[link.name()];
    entry.metrics = std::make_unique<LinkMetrics>(link.name());
    entry.link = std::make_unique<ModbusLink>(ResolveLinkSettings(link), *entry.metrics);
  }
  std::vector<BackendDevice> devices;
  for (const auto& [index, device] : config.devices) {
    // ValidateModbusFleet has checked that the link exists.
    ModbusLink& link = *links.at(device.modbus().link()).link;
    link.AddUnit(static_cast<int>(device.modbus().unit_id()));
    BackendDevice& out = devices.emplace_back();
    out.config_index = index;
    out.id = device.id();
    out.driver = std::make_unique<ModbusDriver>(device, link);
    out.lane = LaneOf(device.modbus().link());
    out.back_to_back = link.settings().back_to_back;
  }
  return std::make_unique<ModbusBackend>(std::move(links), std::move(devices));
}

}  // namespace derma::modbus
