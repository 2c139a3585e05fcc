#include "plugin/core/settings_validator.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The kind's sub-message field name in v1::Settings.
const char* KindField(v1::DeviceKind kind) {
  return kind == v1::DEVICE_KIND_MICRONEEDLING ? "microneedling" : "microcurrent";
}

bool KindMatches(v1::DeviceKind kind, const v1::Settings& settings) {
  return (kind == v1::DEVICE_KIND_MICRONEEDLING && settings.has_microneedling()) ||
         (kind == v1::DEVICE_KIND_MICROCURRENT && settings.has_microcurrent());
}

const v1::ParameterCapability* FindCapability(const v1::Capabilities& caps,
                                              const std::string& field) {
  for (const v1::ParameterCapability& p : caps.parameters()) {
    if (p.field() == field) return &p;
  }
  return nullptr;
}

bool EnumSupported(const v1::Capabilities& caps, const std::string& field, int value) {
  const auto& list = field == "waveform" ? caps.supported_waveforms() : caps.supported_polarities();
  for (int v : list) {
    if (v == value) return true;
  }
  return false;
}

struct Violations {
  std::vector<FieldViolation> out_of_range;
  std::vector<FieldViolation> unsupported;
};

// Range-checks and quantizes one present double field into `merged`.
void MergeNumber(const v1::Capabilities& caps, const FieldDescriptor* field, const Message& from,
                 Message* merged, const std::string& path, Violations* violations) {
  const double value = from.GetReflection()->GetDouble(from, field);
  const v1::ParameterCapability* cap = FindCapability(caps, field->name());
  if (cap == nullptr) {
    violations->unsupported.push_back({path, "this device model has no such parameter"});
    return;
  }
  const double tolerance = 1e-9 * std::max(1.0, std::fabs(cap->max()));
  if (!std::isfinite(value) || value < cap->min() - tolerance || value > cap->max() + tolerance) {
    violations->out_of_range.push_back(
        {path, absl::StrFormat("%g %s is outside %g–%g %s", value, cap->unit(), cap->min(),
                               cap->max(), cap->unit())});
    return;
  }
  double applied = Quantize(value, cap->min(), cap->resolution());
  applied = std::min(std::max(applied, cap->min()), cap->max());
  merged->GetReflection()->SetDouble(merged, field, applied);
}

void MergeEnum(const v1::Capabilities& caps, const FieldDescriptor* field, const Message& from,
               Message* merged, const std::string& path, Violations* violations) {
  const int value = from.GetReflection()->GetEnumValue(from, field);
  if (value == 0) return;  // UNSPECIFIED keeps the current value
  if (!EnumSupported(caps, field->name(), value)) {
    violations->unsupported.push_back(
        {path, absl::StrCat(field->enum_type()->FindValueByNumber(value) != nullptr
                                ? field->enum_type()->FindValueByNumber(value)->name()
                                : absl::StrCat(value),
                            " is not supported by this device model")});
    return;
  }
  merged->GetReflection()->SetEnumValue(merged, field, value);
}

absl::Status ViolationError(const ValidationContext& context, const Violations& violations) {
  const bool range = !violations.out_of_range.empty();
  std::vector<FieldViolation> all = violations.out_of_range;
  all.insert(all.end(), violations.unsupported.begin(), violations.unsupported.end());
  std::string message = absl::StrCat("invalid settings for ", context.device, ": ");
  for (size_t i = 0; i < all.size(); ++i) {
    absl::StrAppend(&message, i ? "; " : "", all[i].field, ": ", all[i].description);
  }
  return MakeError(
      absl::StatusCode::kInvalidArgument,
      range ? v1::ERROR_REASON_SETTING_OUT_OF_RANGE : v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
      message, {{"device", context.device}}, all);
}

}  // namespace

double Quantize(double value, double min, double resolution) {
  if (resolution <= 0) return value;
  const double steps = std::round((value - min) / resolution);
  // Round away binary noise so 0.05-mm steps read 1.25, not 1.2500000000000002.
  return std::round((min + steps * resolution) * 1e9) / 1e9;
}

absl::StatusOr<v1::Settings> ValidateSettings(const ValidationContext& context,
                                              const v1::Settings& current,
                                              const v1::Settings& requested,
                                              const std::string& field_prefix) {
  if (requested.kind_case() == v1::Settings::KIND_NOT_SET) return current;
  if (!KindMatches(context.kind, requested)) {
    const std::string path = absl::StrCat(
        field_prefix, ".", requested.has_microneedling() ? "microneedling" : "microcurrent");
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
                     absl::StrCat(path, ": ", context.device, " is a ",
                                  v1::DeviceKind_Name(context.kind), " device"),
                     {{"device", context.device}},
                     {{path, "settings are for another device kind"}});
  }
  const std::string kind_field = KindField(context.kind);
  const FieldDescriptor* sub = v1::Settings::descriptor()->FindFieldByName(kind_field);
  const Message& from = requested.GetReflection()->GetMessage(requested, sub);
  v1::Settings merged = current;
  Message* target = merged.GetReflection()->MutableMessage(&merged, sub);
  Violations violations;
  const auto* descriptor = from.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string path = absl::StrCat(field_prefix, ".", kind_field, ".", field->name());
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
      if (from.GetReflection()->HasField(from, field)) {
        MergeNumber(*context.capabilities, field, from, target, path, &violations);
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      MergeEnum(*context.capabilities, field, from, target, path, &violations);
    }
  }
  if (!violations.out_of_range.empty() || !violations.unsupported.empty()) {
    return ViolationError(context, violations);
  }
  if (absl::Status s = CheckInterlocks(context, merged, field_prefix); !s.ok()) return s;
  return merged;
}

absl::Status CheckInterlocks(const ValidationContext& context, const v1::Settings& settings,
                             const std::string& field_prefix) {
  if (settings.has_microneedling()) {
    const double depth = settings.microneedling().needle_depth_mm();
    const double length = context.cartridge.needle_length_mm();
    if (depth > length + 1e-9) {
      const std::string path = field_prefix + ".microneedling.needle_depth_mm";
      return MakeError(
          absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE,
          absl::StrFormat("%s: depth %g mm exceeds the installed cartridge's %g mm needles on %s",
                          path, depth, length, context.device),
          {{"device", context.device}, {"needle_length_mm", absl::StrFormat("%g", length)}},
          {{path, absl::StrFormat("must be ≤ needle length %g mm", length)}});
    }
  }
  if (settings.has_microcurrent() && context.impedance_known) {
    const double current_ua = settings.microcurrent().current_ua();
    const double compliance_v = context.capabilities->compliance_voltage_v();
    const double impedance = context.electrode_impedance_ohm;
    const double needed_v = current_ua * 1e-6 * impedance;
    if (needed_v > compliance_v + 1e-9) {
      const double max_ua = impedance > 0 ? std::floor(compliance_v / impedance * 1e6) : 0;
      const std::string path = field_prefix + ".microcurrent.current_ua";
      return MakeError(
          absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_INTERLOCK_COMPLIANCE,
          absl::StrFormat("%s: %g uA into %g ohm needs %.2f V, above the %g V compliance of %s "
                          "(at most %g uA now)",
                          path, current_ua, impedance, needed_v, compliance_v, context.device,
                          max_ua),
          {{"device", context.device},
           {"impedance_ohm", absl::StrFormat("%g", impedance)},
           {"compliance_voltage_v", absl::StrFormat("%g", compliance_v)},
           {"max_current_ua", absl::StrFormat("%g", max_ua)}},
          {{path, absl::StrFormat("must be ≤ %g uA at the measured %g ohm", max_ua, impedance)}});
    }
  }
  return absl::OkStatus();
}

}  // namespace derma
