// Fuzz target: Configure requests through the settings validator. The input is a text-format
// derma.v1.ConfigureRequest; its settings (and validate_only) are applied with Device::Configure
// to a fresh simulated device of every catalogue model, as the service does after resolving
// the name and lease. Checked on every input:
//   - accepted settings are complete for the device's kind, finite and inside every
//     capability's [min, max], and configuring them again changes nothing (quantization is
//     idempotent);
//   - a refusal names a settings reason, lists at least one field, and leaves the device's
//     settings as they were; validate_only never changes them.
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "derma/v1/device_control.pb.h"
#include "plugin/core/settings_validator.h"
#include "plugin/errors/errors.h"
#include "tests/fuzz/fuzz_support.h"

namespace derma::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Every double of the kind's settings is present, finite and within its capability.
void CheckApplied(const v1::Settings& applied, const v1::Capabilities& caps, v1::DeviceKind kind) {
  const bool pen = kind == v1::DEVICE_KIND_MICRONEEDLING;
  DERMA_FUZZ_CHECK(pen ? applied.has_microneedling() : applied.has_microcurrent(),
                   applied.ShortDebugString());
  const Message& sub = pen ? static_cast<const Message&>(applied.microneedling())
                           : static_cast<const Message&>(applied.microcurrent());
  const auto* descriptor = sub.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE) continue;
    for (const v1::ParameterCapability& cap : caps.parameters()) {
      if (cap.field() != field->name()) continue;
      DERMA_FUZZ_CHECK(sub.GetReflection()->HasField(sub, field),
                       absl::StrCat(field->name(), " missing in ", applied.ShortDebugString()));
      const double value = sub.GetReflection()->GetDouble(sub, field);
      DERMA_FUZZ_CHECK(
          std::isfinite(value) && value >= cap.min() && value <= cap.max(),
          absl::StrCat(field->name(), " = ", value, " outside ", cap.min(), "..", cap.max()));
    }
  }
}

bool IsSettingsReason(v1::ErrorReason reason) {
  return reason == v1::ERROR_REASON_SETTING_OUT_OF_RANGE ||
         reason == v1::ERROR_REASON_SETTING_NOT_SUPPORTED ||
         reason == v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE ||
         reason == v1::ERROR_REASON_INTERLOCK_COMPLIANCE;
}

void ConfigureOne(const config::v1::DeviceConfig& config, const v1::ConfigureRequest& request) {
  SimBench bench(config);
  Device& device = bench.device();
  const v1::Settings before = device.settings();
  absl::StatusOr<v1::Settings> applied =
      device.Configure(bench.lease(), request.settings(), request.validate_only());
  if (!applied.ok()) {
    DERMA_FUZZ_CHECK(IsSettingsReason(ReasonOf(applied.status())), applied.status().ToString());
    DERMA_FUZZ_CHECK(!ViolationsOf(applied.status()).empty(), applied.status().ToString());
    DERMA_FUZZ_CHECK(SameMessage(device.settings(), before),
                     "a refused Configure changed settings");
    return;
  }
  CheckApplied(*applied, bench.capabilities(), device.kind());
  DERMA_FUZZ_CHECK(SameMessage(device.settings(), request.validate_only() ? before : *applied),
                   absl::StrCat("device settings ", device.settings().ShortDebugString(),
                                " after applying ", applied->ShortDebugString()));
  absl::StatusOr<v1::Settings> again = device.Configure(bench.lease(), *applied, true);
  DERMA_FUZZ_CHECK(again.ok(), again.status().ToString());
  DERMA_FUZZ_CHECK(
      SameMessage(*again, *applied),
      absl::StrCat(applied->ShortDebugString(), " re-applied as ", again->ShortDebugString()));
}

}  // namespace
}  // namespace derma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  derma::v1::ConfigureRequest request;
  if (!derma::fuzz::ParseText({reinterpret_cast<const char*>(data), size}, &request)) {
    return -1;  // not a request: keep it out of the corpus
  }
  for (const derma::config::v1::DeviceConfig& config : derma::fuzz::CatalogueDevices()) {
    derma::fuzz::ConfigureOne(config, request);
  }
  return 0;
}
