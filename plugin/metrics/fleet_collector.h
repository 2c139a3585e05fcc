// FleetCollector: Prometheus metrics of every device, read from the core's thread-safe views at
// scrape time (no device thread touches a registry, nothing goes stale). Names follow
// Prometheus' rules: prefix derma_, base units, counters end in _total; labels are bounded
// (device id, kind, state, fault reason — never run, client or request ids).
// Layer: plugin/metrics. Thread-safe (Collect may run on any thread, concurrently).
#ifndef DERMA_PLUGIN_METRICS_FLEET_COLLECTOR_H_
#define DERMA_PLUGIN_METRICS_FLEET_COLLECTOR_H_

#include <vector>

#include "plugin/audit/audit_trail.h"
#include "plugin/auth/authorizer.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/telemetry_fanout.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace derma::metrics {

class FleetCollector : public prometheus::Collectable {
 public:
  // `authorizer` (optional) adds derma_auth_failures_total; `audit` (optional) the audit
  // trail's derma_audit_* metrics.
  FleetCollector(const DeviceManager& devices, const TelemetryFanout& fanout,
                 const auth::Authorizer* authorizer = nullptr, const AuditTrail* audit = nullptr)
      : devices_(devices), fanout_(fanout), authorizer_(authorizer), audit_(audit) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const DeviceManager& devices_;
  const TelemetryFanout& fanout_;
  const auth::Authorizer* const authorizer_;
  const AuditTrail* const audit_;
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_FLEET_COLLECTOR_H_
