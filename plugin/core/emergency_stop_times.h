// EmergencyStopTimes: how long each EmergencyStop took from the request reaching the server
// (the entry of its gRPC handler) to the last targeted output being off, before the response
// is built and before any audit record is written: the time that matters for safety. A
// DurationHistogram per scope (one device, all devices), exported by the metrics layer as
// derma_emergency_stop_duration_seconds{scope}. Layer: plugin/core. Thread-safe.
#ifndef DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_
#define DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_

#include <array>

#include "absl/time/time.h"
#include "plugin/core/duration_histogram.h"

namespace derma {

enum class StopScope { kDevice = 0, kAll = 1 };
inline constexpr int kStopScopes = 2;

// "device" or "all": the scope label's value.
const char* StopScopeLabel(StopScope scope);

class EmergencyStopTimes {
 public:
  void Observe(StopScope scope, absl::Duration duration) {
    series_[static_cast<int>(scope)].Observe(duration);
  }
  const DurationHistogram& histogram(StopScope scope) const {
    return series_[static_cast<int>(scope)];
  }
  DurationHistogram::Totals totals(StopScope scope) const { return histogram(scope).totals(); }

 private:
  std::array<DurationHistogram, kStopScopes> series_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_
