// Fleet configuration for the host: reads a derma.config.v1.FleetConfig from a text-format or
// JSON file, validates it as a whole (every problem at once), expands device groups into
// devices, and resolves the "0 means default" fields. Layer: plugin/host. Thread-safe (pure
// functions; LoadFleetConfig only reads the file it is given).
#ifndef DERMA_PLUGIN_HOST_CONFIG_LOADER_H_
#define DERMA_PLUGIN_HOST_CONFIG_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"

namespace derma::host {

inline constexpr double kDefaultSampleRateHz = 100.0;
inline constexpr double kDefaultSpeedFactor = 1.0;

// Reads and parses the file at `path`: JSON when its first non-space character is '{', text
// format otherwise. Does not validate (see ValidateFleetConfig). Errors carry reason
// INVALID_FIELD and metadata "file": NOT_FOUND when the file is missing, PERMISSION_DENIED or
// FAILED_PRECONDITION when it cannot be read, INVALID_ARGUMENT on a syntax error, with the
// message "path:line:column: parser message" (1-based; JSON errors name the file only).
absl::StatusOr<derma::config::v1::FleetConfig> LoadFleetConfig(const std::string& path);

// Checks the whole config, including each registered backend's part of it
// (BackendRegistration::validate_fleet), and returns OK or one INVALID_ARGUMENT (reason
// INVALID_FIELD) whose BadRequest lists every problem, with field paths such as
// "devices[3].id", "groups[0].count", "clock.speed_factor" and "modbus_links[0].rtu.baud". The
// message names the first few.
absl::Status ValidateFleetConfig(const derma::config::v1::FleetConfig& config);

// Every device of the fleet in order: `devices` first, then each group's generated devices
// ("{id_prefix}{i}" for i in 1..count, a copy of the template with that id and, on a Modbus
// link, unit id modbus.unit_id + i − 1). Expects a valid config.
std::vector<derma::config::v1::DeviceConfig> ExpandFleet(
    const derma::config::v1::FleetConfig& config);

// sample_rate_hz with 0 resolved to kDefaultSampleRateHz.
double EffectiveSampleRateHz(const derma::config::v1::FleetConfig& config);

// clock.speed_factor with 0 resolved to kDefaultSpeedFactor.
double EffectiveSpeedFactor(const derma::config::v1::FleetConfig& config);

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_CONFIG_LOADER_H_
