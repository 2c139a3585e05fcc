// Settings validation: range checks against a device's capabilities, quantization to its
// resolution, and the cross-parameter interlocks. Layer: plugin/core.
// Thread-safe (pure functions).
//
// Values outside [min, max] (or not finite) are rejected, never clipped; every violating
// field is listed in one BadRequest. In-range values are quantized to the nearest multiple of
// the resolution counted from min, and the caller gets the applied values back.
#ifndef DERMA_PLUGIN_CORE_SETTINGS_VALIDATOR_H_
#define DERMA_PLUGIN_CORE_SETTINGS_VALIDATOR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "derma/v1/device.pb.h"

namespace derma {

// What validation needs to know about the device right now.
struct ValidationContext {
  std::string device;  // "devices/{id}", for messages
  v1::DeviceKind kind = v1::DEVICE_KIND_UNSPECIFIED;
  const v1::Capabilities* capabilities = nullptr;
  // Pens: the installed cartridge.
  v1::Cartridge cartridge;
  // Stimulators: latest measured skin–electrode impedance; the compliance interlock is
  // checked only when `impedance_known`.
  double electrode_impedance_ohm = 0;
  bool impedance_known = false;
};

// Merges `requested` (fields present override) into `current`, range-checks, quantizes and
// checks interlocks. Returns the complete applied settings. `field_prefix` names the request
// field holding the settings (e.g. "settings" or "steps[2].settings").
// Errors: SETTING_NOT_SUPPORTED (wrong kind, unsupported enum value), SETTING_OUT_OF_RANGE,
// INTERLOCK_DEPTH_EXCEEDS_NEEDLE, INTERLOCK_COMPLIANCE, each with a BadRequest.
absl::StatusOr<v1::Settings> ValidateSettings(const ValidationContext& context,
                                              const v1::Settings& current,
                                              const v1::Settings& requested,
                                              const std::string& field_prefix = "settings");

// Checks the interlocks of complete settings (also used by Start and Resume, whose cartridge
// and impedance may have changed since Configure). The one place the interlock errors are
// built, so Configure, Start, Resume and every StartRun step refuse alike:
// INTERLOCK_DEPTH_EXCEEDS_NEEDLE with metadata device, needle_length_mm;
// INTERLOCK_COMPLIANCE (only when `impedance_known`) with metadata device, impedance_ohm,
// compliance_voltage_v, max_current_ua; each with one BadRequest naming the field under
// `field_prefix`.
absl::Status CheckInterlocks(const ValidationContext& context, const v1::Settings& settings,
                             const std::string& field_prefix = "settings");

// Quantizes `value` to `resolution` steps counted from `min`.
double Quantize(double value, double min, double resolution);

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_SETTINGS_VALIDATOR_H_
