#include "plugin/metrics/emergency_stop_collector.h"

#include <utility>

#include "plugin/metrics/duration_histogram_metric.h"

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
    FillHistogram(times_.histogram(scope), metric);
  }
  return {std::move(family)};
}

}  // namespace derma::metrics
