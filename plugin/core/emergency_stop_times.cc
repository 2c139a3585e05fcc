#include "plugin/core/emergency_stop_times.h"

#include <algorithm>

namespace derma {

const char* StopScopeLabel(StopScope scope) { return scope == StopScope::kAll ? "all" : "device"; }

void EmergencyStopTimes::Observe(StopScope scope, absl::Duration duration) {
  Series& series = series_[static_cast<int>(scope)];
  const double seconds = absl::ToDoubleSeconds(duration);
  size_t bucket = 0;
  while (bucket < kBounds.size() && seconds > kBounds[bucket]) ++bucket;
  series.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  const int64_t nanos = std::max<int64_t>(0, absl::ToInt64Nanoseconds(duration));
  series.nanos_sum.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
  series.count.fetch_add(1, std::memory_order_relaxed);
}

EmergencyStopTimes::Buckets EmergencyStopTimes::buckets(StopScope scope) const {
  const Series& series = series_[static_cast<int>(scope)];
  Buckets out;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = series.buckets[i].load(std::memory_order_relaxed);
  }
  return out;
}

EmergencyStopTimes::Totals EmergencyStopTimes::totals(StopScope scope) const {
  const Series& series = series_[static_cast<int>(scope)];
  return {series.count.load(std::memory_order_relaxed),
          absl::Nanoseconds(series.nanos_sum.load(std::memory_order_relaxed))};
}

}  // namespace derma
