#include "sim/sim_support.h"

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma::sim {

absl::Status SimLink::Connect() {
  if (!up_) {
    return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                     absl::StrCat("device ", device_id_, ": link is down"),
                     {{"device", device_id_}});
  }
  connected_ = true;
  return absl::OkStatus();
}

void SimLink::Set(bool up) {
  up_ = up;
  if (!up) connected_ = false;
}

absl::Status SimLink::Require(absl::string_view what, bool need_connected) const {
  if (up_ && (connected_ || !need_connected)) return absl::OkStatus();
  const char* why = up_ ? "not connected" : "link is down";
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                   absl::StrCat("device ", device_id_, ": ", what, " refused: ", why),
                   {{"device", device_id_}});
}

double SensorNoise::Unit() {
  // The top 53 bits of one draw, scaled to [0, 1): exact and library-independent.
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}

absl::Status FaultNotApplicable(v1::FaultKind fault, v1::DeviceKind kind) {
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_FAULT_NOT_APPLICABLE,
                   absl::StrCat("fault ", v1::FaultKind_Name(fault), " does not apply to a ",
                                v1::DeviceKind_Name(kind), " device"),
                   {{"fault", v1::FaultKind_Name(fault)}});
}

absl::Status WrongSettingsKind(const v1::Settings& settings, v1::DeviceKind kind) {
  const char* given = settings.has_microneedling()  ? "microneedling"
                      : settings.has_microcurrent() ? "microcurrent"
                                                    : "no";
  return MakeError(
      absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
      absl::StrCat(given, " settings given to a ", v1::DeviceKind_Name(kind), " device"));
}

DriverInfo MakeSimInfo(const config::v1::DeviceConfig& config, const std::string& model,
                       const v1::Capabilities& capabilities, const v1::Settings& defaults) {
  DriverInfo info;
  info.kind = config.kind();
  DeviceDescription& description = info.description.emplace();
  description.model = model;
  description.serial_number =
      config.serial_number().empty() ? "SIM-" + config.id() : config.serial_number();
  description.firmware_version = "sim-1.0.0";
  info.simulated = true;
  info.hooks_never_block = true;  // every hook is arithmetic on the model
  description.capabilities = capabilities;
  description.default_settings = defaults;
  return info;
}

absl::Status InvalidConfigField(const config::v1::DeviceConfig& config, absl::string_view field,
                                absl::string_view problem) {
  std::string path = absl::StrCat("devices[", config.id(), "].", field);
  std::string message = absl::StrCat(path, ": ", problem);
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD, message, {},
                   {{path, std::string(problem)}});
}

}  // namespace derma::sim
