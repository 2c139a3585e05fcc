#include "plugin/service/telemetry_request.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma::service {
namespace {

constexpr double kMaxSampleIntervalS = 3600;

}  // namespace

absl::StatusOr<TelemetryRequestPlan> ParseTelemetryRequest(
    const DeviceManager& devices, const v1::StreamTelemetryRequest& request) {
  TelemetryRequestPlan plan;
  for (int i = 0; i < request.names_size(); ++i) {
    absl::StatusOr<uint32_t> index = devices.Find(request.names(i), absl::StrCat("names[", i, "]"));
    if (!index.ok()) return index.status();
    if (std::find(plan.devices.begin(), plan.devices.end(), *index) == plan.devices.end()) {
      plan.devices.push_back(*index);
    }
  }
  const double interval = request.sample_interval_s();
  if (!(interval >= 0 && interval <= kMaxSampleIntervalS)) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrCat("sample_interval_s must be 0–3600 s, got ", interval), {},
                     {{"sample_interval_s", "must be 0 (every sample) to 3600 seconds"}});
  }
  plan.sample_interval = absl::Seconds(interval);
  return plan;
}

}  // namespace derma::service
