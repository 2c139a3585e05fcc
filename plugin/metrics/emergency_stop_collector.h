// EmergencyStopCollector: derma_emergency_stop_duration_seconds{scope="device"|"all"}, the
// histogram of each EmergencyStop's time from the request reaching its gRPC handler to the last
// targeted output off (plugin/core/emergency_stop_times.h), read at scrape time. Both scopes
// are always exported, at zero before the first stop. Layer: plugin/metrics. Thread-safe.
#ifndef DERMA_PLUGIN_METRICS_EMERGENCY_STOP_COLLECTOR_H_
#define DERMA_PLUGIN_METRICS_EMERGENCY_STOP_COLLECTOR_H_

#include <vector>

#include "plugin/core/emergency_stop_times.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace derma::metrics {

class EmergencyStopCollector : public prometheus::Collectable {
 public:
  // `times` must outlive the collector.
  explicit EmergencyStopCollector(const EmergencyStopTimes& times) : times_(times) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const EmergencyStopTimes& times_;
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_EMERGENCY_STOP_COLLECTOR_H_
