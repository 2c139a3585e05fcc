// Validation of a StreamTelemetryRequest: which devices to stream and how often, checked before
// a stream subscribes. Layer: plugin/service. Thread-safe (pure function over a DeviceManager,
// whose name lookup is thread-safe after setup); no gRPC needed, so it is fuzzed directly.
#ifndef DERMA_PLUGIN_SERVICE_TELEMETRY_REQUEST_H_
#define DERMA_PLUGIN_SERVICE_TELEMETRY_REQUEST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "plugin/core/device_manager.h"

namespace derma::service {

struct TelemetryRequestPlan {
  std::vector<uint32_t> devices;  // indexes in request order, each once; empty = every device
  absl::Duration sample_interval;
};

// Resolves `request.names` (a device named twice is streamed once) and checks
// sample_interval_s is 0–3600 s. Errors as DeviceManager::Find (field "names[i]"), then
// INVALID_ARGUMENT reason INVALID_FIELD for the interval.
absl::StatusOr<TelemetryRequestPlan> ParseTelemetryRequest(
    const DeviceManager& devices, const v1::StreamTelemetryRequest& request);

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_TELEMETRY_REQUEST_H_
