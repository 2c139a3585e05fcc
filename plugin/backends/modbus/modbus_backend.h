// The Modbus backend: devices that implement derma's register map (REGISTER_MAP.md) on the
// fleet's modbus_links. One ModbusLink and one I/O lane (thread) per link; EmergencyStop of
// every device broadcasts the stop on each RTU bus first; link metrics for Prometheus.
// Layer: plugin/backends/modbus. Thread-safe after Attach.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_BACKEND_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_BACKEND_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/backends/backend.h"

namespace derma::modbus {

// Every Modbus-related problem of the config at once (INVALID_ARGUMENT, reason INVALID_FIELD,
// one BadRequest violation per problem, named by field path): the clock, each link, each
// Modbus device's placement (and `modbus` on a device of another backend, `setup` on a Modbus
// device), unit ids unique per link and within 1–247 also for groups.
absl::Status ValidateModbusFleet(const config::v1::FleetConfig& fleet);

absl::StatusOr<std::unique_ptr<Backend>> CreateModbusBackend(const BackendConfig& config);

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_BACKEND_H_
