// LinkCollector: the Modbus links' metrics for Prometheus, read from their LinkMetrics at scrape
// time: derma_modbus_requests_total{link,outcome}, derma_modbus_reconnects_total{link},
// derma_modbus_broadcasts_total{link}, derma_modbus_link_up{link} and the histogram
// derma_modbus_transaction_duration_seconds{link} (one try of a request, from sending to its
// reply or timeout). Layer: plugin/backends/modbus. Thread-safe.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_LINK_COLLECTOR_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_LINK_COLLECTOR_H_

#include <vector>

#include "plugin/backends/modbus/link_metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace derma::modbus {

class LinkCollector : public prometheus::Collectable {
 public:
  // The metrics must outlive the collector.
  explicit LinkCollector(std::vector<const LinkMetrics*> links) : links_(std::move(links)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<const LinkMetrics*> links_;
};

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_LINK_COLLECTOR_H_
