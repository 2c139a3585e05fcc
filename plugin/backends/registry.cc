#include "plugin/backends/registry.h"

#include "plugin/backends/modbus/modbus_backend.h"
#include "plugin/backends/simulator/simulator_backend.h"

namespace derma {

const std::vector<BackendRegistration>& RegisteredBackends() {
  static const auto* const kBackends = new std::vector<BackendRegistration>{
      {config::v1::BACKEND_SIMULATOR, "simulator", &ValidateSimulatedFleet,
       &CreateSimulatorBackend},
      {config::v1::BACKEND_MODBUS, "modbus", &modbus::ValidateModbusFleet,
       &modbus::CreateModbusBackend},
  };
  return *kBackends;
}

config::v1::Backend EffectiveBackend(const config::v1::DeviceConfig& device) {
  return device.backend() == config::v1::BACKEND_UNSPECIFIED ? config::v1::BACKEND_SIMULATOR
                                                             : device.backend();
}

}  // namespace derma
