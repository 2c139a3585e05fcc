#include "plugin/metrics/emergency_stop_collector.h"

#include <limits>
#include <utility>

namespace derma::metrics {

std::vector<prometheus::MetricFamily> EmergencyStopCollector::Collect() const {
  prometheus::MetricFamily family{
      "derma_emergency_stop_duration_seconds",
      "Time from an EmergencyStop request reaching the server (its handler's entry) to the last "
      "targeted output off, before the response is built and the audit record written; by "
      "scope (one device, or all devices).",
      prometheus::MetricType::Histogram,
      {}};
  for (const StopScope scope : {StopScope::kDevice, StopScope::kAll}) {
    prometheus::ClientMetric& metric = family.metric.emplace_back();
    metric.label.push_back({"scope", StopScopeLabel(scope)});
    // The count is the buckets' total, so it always equals the +Inf bucket; a stop recorded
    // during the scrape may be in one and not yet in the sum.
    const EmergencyStopTimes::Buckets buckets = times_.buckets(scope);
    const EmergencyStopTimes::Totals totals = times_.totals(scope);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < EmergencyStopTimes::kBounds.size(); ++b) {
      cumulative += buckets[b];
      metric.histogram.bucket.push_back({cumulative, EmergencyStopTimes::kBounds[b]});
    }
    cumulative += buckets.back();
    metric.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    metric.histogram.sample_count = cumulative;
    metric.histogram.sample_sum = absl::ToDoubleSeconds(totals.sum);
  }
  return {std::move(family)};
}

}  // namespace derma::metrics
