#include "plugin/backends/modbus/register_codec.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugin/backends/modbus/register_map.h"
#include "plugin/errors/errors.h"

namespace derma::modbus {
namespace {

namespace map = modbus_map;

// One settable parameter of the map (REGISTER_MAP.md §3.2), in its order.
struct Parameter {
  const char* field;
  const char* unit;
  double scale;
};
constexpr Parameter kPenParameters[] = {
    {"needle_depth_mm", "mm", 0.001}, {"stroke_rate_hz", "Hz", 0.01}, {"session_limit_s", "s", 0.001}};
constexpr Parameter kStimParameters[] = {{"current_ua", "uA", 0.01},
                                         {"frequency_hz", "Hz", 0.01},
                                         {"ramp_s", "s", 0.001},
                                         {"session_limit_s", "s", 0.001}};

bool IsPen(v1::DeviceKind kind) { return kind == v1::DEVICE_KIND_MICRONEEDLING; }

std::vector<Parameter> ParametersOf(v1::DeviceKind kind) {
  if (IsPen(kind)) return {std::begin(kPenParameters), std::end(kPenParameters)};
  return {std::begin(kStimParameters), std::end(kStimParameters)};
}

uint16_t At(const uint16_t* block, uint16_t block_address, uint16_t address) {
  return block[address - block_address];
}

// A parameter as the device gives it, in register units of its scale.
struct RawParameter {
  int64_t min, max, resolution, default_value;
};

absl::Status Refuse(const std::string& field, const std::string& what) {
  return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(field, ": ", what), {}, {{field, what}});
}

// The device's own capabilities break §3.2.
absl::Status BadCapabilities(const std::string& what) {
  return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_DRIVER_ERROR,
                   absl::StrCat("the device's capabilities break the register map: ", what));
}

absl::Status CheckRawParameter(const Parameter& p, const RawParameter& r) {
  if (r.resolution < 1 || r.min > r.default_value || r.default_value > r.max ||
      (r.default_value - r.min) % r.resolution != 0 || (r.max - r.min) % r.resolution != 0) {
    return BadCapabilities(absl::StrCat(p.field, " min ", r.min, " max ", r.max, " resolution ",
                                        r.resolution, " default ", r.default_value,
                                        " (register units)"));
  }
  return absl::OkStatus();
}

// `value` (in the parameter's unit) in register units, if it is a whole number of them.
bool ToRegisterUnits(double value, double scale, int64_t* out) {
  const double units = value / scale;
  const double rounded = std::round(units);
  if (!std::isfinite(units) || std::abs(units - rounded) > 1e-6 * std::max(1.0, std::abs(units))) {
    return false;
  }
  *out = static_cast<int64_t>(rounded);
  return true;
}

// Applies one narrowing override to `r`; a violation names "<path>.<part>".
absl::Status Narrow(const config::v1::ParameterOverride& o, const Parameter& p,
                    const std::string& path, RawParameter* r) {
  const RawParameter device = *r;
  auto check = [&](const char* part, double value, int64_t* units) -> absl::Status {
    if (!ToRegisterUnits(value, p.scale, units)) {
      return Refuse(absl::StrCat(path, ".", part),
                    absl::StrCat(value, " ", p.unit, " is not a multiple of the register scale ",
                                 p.scale, " ", p.unit));
    }
    return absl::OkStatus();
  };
  int64_t v = 0;
  if (o.has_resolution()) {
    if (absl::Status s = check("resolution", o.resolution(), &v); !s.ok()) return s;
    if (v < device.resolution || v % device.resolution != 0) {
      return Refuse(path + ".resolution",
                    absl::StrCat(o.resolution(), " ", p.unit, " is not a whole multiple of the "
                                 "device's resolution ", device.resolution * p.scale, " ", p.unit));
    }
    r->resolution = v;
  }
  if (o.has_min()) {
    if (absl::Status s = check("min", o.min(), &v); !s.ok()) return s;
    if (v < device.min || v > device.max || (v - device.min) % device.resolution != 0) {
      return Refuse(path + ".min",
                    absl::StrCat(o.min(), " ", p.unit, " does not narrow the device's range ",
                                 device.min * p.scale, "–", device.max * p.scale, " ", p.unit,
                                 " on its grid of ", device.resolution * p.scale, " ", p.unit));
    }
    r->min = v;
  }
  if (o.has_max()) {
    if (absl::Status s = check("max", o.max(), &v); !s.ok()) return s;
    if (v < r->min || v > device.max) {
      return Refuse(path + ".max",
                    absl::StrCat(o.max(), " ", p.unit, " does not narrow the device's range ",
                                 r->min * p.scale, "–", device.max * p.scale, " ", p.unit));
    }
    r->max = v;
  }
  // The default moves onto the narrowed grid, within the narrowed range.
  int64_t steps = (std::clamp(r->default_value, r->min, r->max) - r->min) / r->resolution;
  r->default_value = r->min + steps * r->resolution;
  return absl::OkStatus();
}

absl::Status ApplyOverrides(const config::v1::DeviceConfig& config,
                            const std::vector<Parameter>& parameters,
                            std::vector<RawParameter>& raw) {
  for (int i = 0; i < config.overrides_size(); ++i) {
    const config::v1::ParameterOverride& o = config.overrides(i);
    const std::string path = absl::StrCat("devices[", config.id(), "].overrides[", i, "]");
    size_t index = parameters.size();
    for (size_t k = 0; k < parameters.size(); ++k) {
      if (o.field() == parameters[k].field) index = k;
    }
    if (index == parameters.size()) {
      return Refuse(path + ".field", absl::StrCat("unknown parameter \"", o.field(), "\""));
    }
    if (absl::Status s = Narrow(o, parameters[index], path, &raw[index]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void SetSetting(v1::Settings* settings, v1::DeviceKind kind, const std::string& field,
                double value) {
  google::protobuf::Message* message =
      IsPen(kind) ? static_cast<google::protobuf::Message*>(settings->mutable_microneedling())
                  : settings->mutable_microcurrent();
  const auto* descriptor = message->GetDescriptor()->FindFieldByName(field);
  message->GetReflection()->SetDouble(message, descriptor, value);
}

absl::Status DecodeStimulatorEnums(const uint16_t* caps, v1::Capabilities* out,
                                   v1::Settings* defaults) {
  const uint16_t waveforms = At(caps, map::kCapsAddress, map::kCapsSupportedWaveforms);
  const uint16_t polarities = At(caps, map::kCapsAddress, map::kCapsSupportedPolarities);
  for (int w = v1::WAVEFORM_MONOPHASIC_SQUARE; w <= v1::WAVEFORM_SINE; ++w) {
    if (waveforms & (1u << w)) out->add_supported_waveforms(static_cast<v1::Waveform>(w));
  }
  for (int p = v1::POLARITY_POSITIVE; p <= v1::POLARITY_NEGATIVE; ++p) {
    if (polarities & (1u << p)) out->add_supported_polarities(static_cast<v1::Polarity>(p));
  }
  const uint16_t waveform = At(caps, map::kCapsAddress, map::kCapsDefaultWaveform);
  const uint16_t polarity = At(caps, map::kCapsAddress, map::kCapsDefaultPolarity);
  if (out->supported_waveforms().empty() || out->supported_polarities().empty() ||
      waveform > v1::WAVEFORM_SINE || !(waveforms & (1u << waveform)) ||
      polarity > v1::POLARITY_NEGATIVE || !(polarities & (1u << polarity))) {
    return BadCapabilities(absl::StrCat("waveforms 0x", absl::Hex(waveforms), " polarities 0x",
                                        absl::Hex(polarities), " defaults ", waveform, "/",
                                        polarity));
  }
  const uint32_t compliance_mv = map::U32At(&caps[map::kCapsComplianceVoltageMv - map::kCapsAddress]);
  if (compliance_mv == 0) return BadCapabilities("a stimulator with compliance_voltage 0");
  out->set_compliance_voltage_v(compliance_mv * 0.001);
  defaults->mutable_microcurrent()->set_waveform(static_cast<v1::Waveform>(waveform));
  defaults->mutable_microcurrent()->set_polarity(static_cast<v1::Polarity>(polarity));
  return absl::OkStatus();
}

}  // namespace

std::string IdentModel(const uint16_t* ident) {
  return map::StringAt(&ident[map::kIdentModel], map::kIdentModelLength);
}
std::string IdentSerial(const uint16_t* ident) {
  return map::StringAt(&ident[map::kIdentSerial], map::kIdentSerialLength);
}
std::string IdentFirmware(const uint16_t* ident) {
  return map::StringAt(&ident[map::kIdentFirmware], map::kIdentFirmwareLength);
}

absl::Status CheckIdentity(const config::v1::DeviceConfig& config, const uint16_t* ident) {
  const std::string where = absl::StrCat("devices[", config.id(), "]");
  const uint16_t version = ident[map::kIdentMapVersion];
  if (version != map::kMapVersion) {
    return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_DRIVER_ERROR,
                     absl::StrCat("unit ", config.modbus().unit_id(), " speaks register map ",
                                  version, "; derma speaks ", map::kMapVersion));
  }
  const uint16_t kind = ident[map::kIdentKind];
  if (kind != static_cast<uint16_t>(config.kind())) {
    return Refuse(where + ".kind",
                  absl::StrCat("the device at unit ", config.modbus().unit_id(), " is of kind ",
                               kind, ", not ", v1::DeviceKind_Name(config.kind()), " (",
                               static_cast<int>(config.kind()), ")"));
  }
  if (!config.model().empty() && IdentModel(ident) != config.model()) {
    return Refuse(where + ".model", absl::StrCat("the device reports model \"", IdentModel(ident),
                                                 "\", not \"", config.model(), "\""));
  }
  if (!config.serial_number().empty() && IdentSerial(ident) != config.serial_number()) {
    return Refuse(where + ".serial_number",
                  absl::StrCat("the device reports serial number \"", IdentSerial(ident),
                               "\", not \"", config.serial_number(), "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceDescription> DecodeDescription(const config::v1::DeviceConfig& config,
                                                    const uint16_t* ident, const uint16_t* caps) {
  const v1::DeviceKind kind = config.kind();
  const std::vector<Parameter> parameters = ParametersOf(kind);
  const uint16_t count = At(caps, map::kCapsAddress, map::kCapsParameterCount);
  if (count != parameters.size()) {
    return BadCapabilities(absl::StrCat("parameter_count ", count, ", expected ",
                                        parameters.size(), " for this kind"));
  }
  std::vector<RawParameter> raw(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    const uint16_t* p = &caps[map::kCapsParameters - map::kCapsAddress + i * map::kCapsParameterStride];
    raw[i] = {map::U32At(p), map::U32At(p + 2), map::U32At(p + 4), map::U32At(p + 6)};
    if (absl::Status s = CheckRawParameter(parameters[i], raw[i]); !s.ok()) return s;
  }
  const RawParameter& session = raw.back();
  if (session.min > 1000 || session.max < 3600000) {
    return BadCapabilities("session_limit_s must allow 1–3600 s");
  }
  if (absl::Status s = ApplyOverrides(config, parameters, raw); !s.ok()) return s;

  DeviceDescription d;
  d.model = IdentModel(ident);
  d.serial_number = IdentSerial(ident);
  d.firmware_version = IdentFirmware(ident);
  if (IsPen(kind)) {
    d.default_settings.mutable_microneedling();
  } else {
    d.default_settings.mutable_microcurrent();
  }
  for (size_t i = 0; i < parameters.size(); ++i) {
    const Parameter& p = parameters[i];
    v1::ParameterCapability* c = d.capabilities.add_parameters();
    c->set_field(p.field);
    c->set_unit(p.unit);
    c->set_min(raw[i].min * p.scale);
    c->set_max(raw[i].max * p.scale);
    c->set_resolution(raw[i].resolution * p.scale);
    c->set_default_value(raw[i].default_value * p.scale);
    SetSetting(&d.default_settings, kind, p.field, c->default_value());
  }
  if (!IsPen(kind)) {
    if (absl::Status s = DecodeStimulatorEnums(caps, &d.capabilities, &d.default_settings);
        !s.ok()) {
      return s;
    }
  }
  v1::OutputRegulation* regulation = d.capabilities.mutable_regulation();
  regulation->set_tolerance(At(caps, map::kCapsAddress, map::kCapsRegulationTolerance) *
                            map::kFractionScale);
  regulation->set_grace_s(At(caps, map::kCapsAddress, map::kCapsRegulationGraceMs) * 0.001);
  regulation->set_dose_tolerance(At(caps, map::kCapsAddress, map::kCapsDoseTolerance) *
                                 map::kFractionScale);
  if (IsPen(kind)) {
    regulation->set_stroke_rate_slew_hz_per_s(
        map::U32At(&caps[map::kCapsStrokeRateSlew - map::kCapsAddress]) * map::kSlewScale);
  }
  return d;
}

absl::StatusOr<std::vector<uint16_t>> EncodeSetpoints(v1::DeviceKind kind,
                                                      const v1::Settings& settings) {
  const bool pen = IsPen(kind);
  if (settings.kind_case() !=
      (pen ? v1::Settings::kMicroneedling : v1::Settings::kMicrocurrent)) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
                     absl::StrCat("settings are not for a ", v1::DeviceKind_Name(kind)));
  }
  const google::protobuf::Message& message =
      pen ? static_cast<const google::protobuf::Message&>(settings.microneedling())
          : settings.microcurrent();
  std::vector<uint16_t> block(pen ? map::kPenSetpointsLength : map::kStimSetpointsLength);
  const std::vector<Parameter> parameters = ParametersOf(kind);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto* field = message.GetDescriptor()->FindFieldByName(parameters[i].field);
    const double value = message.GetReflection()->GetDouble(message, field);
    map::PutU32(static_cast<uint32_t>(std::llround(value / parameters[i].scale)), &block[2 * i]);
  }
  if (!pen) {
    block[map::kStimWaveform - map::kSetpoints] = static_cast<uint16_t>(settings.microcurrent().waveform());
    block[map::kStimPolarity - map::kSetpoints] = static_cast<uint16_t>(settings.microcurrent().polarity());
  }
  return block;
}

DecodedSnapshot DecodeSnapshot(v1::DeviceKind kind, const uint16_t* snapshot) {
  auto at = [snapshot](uint16_t address) { return &snapshot[address - map::kSnapshotAddress]; };
  DecodedSnapshot out;
  DriverReading& r = out.reading;
  out.status = *at(map::kSnapStatus);
  out.uptime_ms = map::U64At(at(map::kSnapUptimeMs));
  r.output_on = (out.status & map::kStatusOutputOn) != 0;
  r.estop_latched = (out.status & map::kStatusEstopLatched) != 0;
  const uint16_t faults = *at(map::kSnapFaults);
  std::vector<std::string> names;
  for (int k = v1::FAULT_KIND_ELECTRODE_CONTACT_LOST; k <= v1::FAULT_KIND_CARTRIDGE_JAM; ++k) {
    if (faults & (1u << k)) {
      r.faults |= FaultBit(static_cast<v1::FaultKind>(k));
      names.push_back(v1::FaultKind_Name(static_cast<v1::FaultKind>(k)));
    }
  }
  if (!names.empty()) r.fault_detail = "the device reports " + absl::StrJoin(names, ", ");
  if (IsPen(kind)) {
    r.pen.needle_depth_mm = map::U32At(at(map::kPenNeedleDepth)) * map::kDepthScale;
    r.pen.stroke_rate_hz = map::U32At(at(map::kPenStrokeRate)) * map::kRateScale;
    r.pen.strokes_total = map::U64At(at(map::kPenStrokesTotal));
    r.pen.motor_current_a = map::U32At(at(map::kPenMotorCurrentMa)) * 0.001;
    r.pen.motor_temperature_c =
        static_cast<int16_t>(*at(map::kPenMotorTemperature)) * map::kTemperatureScale;
    r.cartridge.set_needle_count(*at(map::kPenCartridgeNeedles));
    r.cartridge.set_needle_length_mm(map::U32At(at(map::kPenCartridgeLength)) * map::kDepthScale);
    r.cartridge.set_strokes_used(map::U64At(at(map::kPenCartridgeUsed)));
    r.cartridge.set_strokes_rated(map::U64At(at(map::kPenCartridgeRated)));
    r.pen.cartridge_strokes_used = r.cartridge.strokes_used();
  } else {
    r.stim.current_setpoint_ua = map::U32At(at(map::kStimCurrentSetpoint)) * map::kCurrentScale;
    r.stim.current_measured_ua =
        static_cast<int32_t>(map::U32At(at(map::kStimCurrentMeasured))) * map::kCurrentScale;
    r.stim.electrode_impedance_ohm = map::U32At(at(map::kStimImpedanceOhm));
    r.stim.output_voltage_v = map::U32At(at(map::kStimOutputVoltageMv)) * 0.001;
    out.charge_nc = map::U64At(at(map::kStimChargeNc));
    r.stim.charge_delivered_uc = out.charge_nc * map::kChargeScale;
    r.stim.electrode_contact = *at(map::kStimContact) != 0;
  }
  return out;
}

}  // namespace derma::modbus
