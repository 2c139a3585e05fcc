// The register map's blocks as derma's types: identification and capabilities into a
// DeviceDescription (with the config's expected identity and narrowing overrides), settings
// into the setpoint block, and the snapshot into a DriverReading. Pure functions over register
// arrays, so every conversion is tested without a wire. Layer: plugin/backends/modbus.
// Thread-safe.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_CODEC_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/driver.h"

namespace derma::modbus {

// From the identification block (kIdentLength registers).
std::string IdentModel(const uint16_t* ident);
std::string IdentSerial(const uint16_t* ident);
std::string IdentFirmware(const uint16_t* ident);

// The device answering is one derma may connect as `config`: map version 1, the configured
// kind, and the configured model and serial number when they are set. FAILED_PRECONDITION
// (reason DRIVER_ERROR) naming what differs and the config field ("devices[<id>].model").
absl::Status CheckIdentity(const config::v1::DeviceConfig& config, const uint16_t* ident);

// The description the device gives of itself, with the config's overrides applied. An override
// may only narrow: min up and max down onto the device's grid, resolution a whole multiple of
// the device's. FAILED_PRECONDITION (reason INVALID_FIELD) naming
// "devices[<id>].overrides[<i>].<part>" for one that would widen or leave the grid, or the
// capability register for a device whose capabilities break REGISTER_MAP.md §3.2's rules.
absl::StatusOr<DeviceDescription> DecodeDescription(const config::v1::DeviceConfig& config,
                                                    const uint16_t* ident, const uint16_t* caps);

// The setpoint block of `kind` for complete, validated settings. INVALID_ARGUMENT (reason
// SETTING_NOT_SUPPORTED) for settings of another kind.
absl::StatusOr<std::vector<uint16_t>> EncodeSetpoints(v1::DeviceKind kind,
                                                      const v1::Settings& settings);

// A snapshot (kSnapshotLength registers) as a reading; counters are the device's raw values.
struct DecodedSnapshot {
  DriverReading reading;  // link_up left true
  uint64_t uptime_ms = 0;
  uint64_t charge_nc = 0;  // stimulators: charge_delivered, in 0.001 µC
  uint16_t status = 0;
};
DecodedSnapshot DecodeSnapshot(v1::DeviceKind kind, const uint16_t* snapshot);

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_CODEC_H_
