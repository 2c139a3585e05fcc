#include "plugin/backends/modbus/link_collector.h"

#include <limits>
#include <string>

namespace derma::modbus {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric& AddMetric(MetricFamily& family, const LinkMetrics& link) {
  ClientMetric& metric = family.metric.emplace_back();
  metric.label.push_back({"link", link.link()});
  return metric;
}

}  // namespace

std::vector<MetricFamily> LinkCollector::Collect() const {
  MetricFamily requests{"derma_modbus_requests_total",
                        "Tries of Modbus requests, by how each ended (ok, timeout, crc_error, "
                        "foreign_reply, exception, transport_error).",
                        MetricType::Counter,
                        {}};
  MetricFamily reconnects{"derma_modbus_reconnects_total",
                          "Times the link's transport was opened again after it closed.",
                          MetricType::Counter,
                          {}};
  MetricFamily broadcasts{"derma_modbus_broadcasts_total",
                          "Emergency-stop broadcasts sent on the link (RTU).",
                          MetricType::Counter,
                          {}};
  MetricFamily up{"derma_modbus_link_up",
                  "1 while the link's transport is open and its last request got a reply.",
                  MetricType::Gauge,
                  {}};
  MetricFamily latency{"derma_modbus_transaction_duration_seconds",
                       "Duration of one try of a Modbus request, from sending it to its reply "
                       "or its timeout.",
                       MetricType::Histogram,
                       {}};
  for (const LinkMetrics* link : links_) {
    for (int o = 0; o < static_cast<int>(RequestOutcome::kCount); ++o) {
      const auto outcome = static_cast<RequestOutcome>(o);
      ClientMetric& m = AddMetric(requests, *link);
      m.label.push_back({"outcome", OutcomeLabel(outcome)});
      m.counter.value = static_cast<double>(link->requests(outcome));
    }
    AddMetric(reconnects, *link).counter.value = static_cast<double>(link->reconnects());
    AddMetric(broadcasts, *link).counter.value = static_cast<double>(link->broadcasts());
    AddMetric(up, *link).gauge.value = link->up() ? 1 : 0;
    ClientMetric& h = AddMetric(latency, *link);
    for (size_t i = 0; i < LinkMetrics::kLatencyBounds.size(); ++i) {
      h.histogram.bucket.push_back({link->latency_bucket(i), LinkMetrics::kLatencyBounds[i]});
    }
    const uint64_t count = link->latency_bucket(LinkMetrics::kLatencyBounds.size());
    h.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = count;
    h.histogram.sample_sum = link->latency_sum_s();
  }
  return {requests, reconnects, broadcasts, up, latency};
}

}  // namespace derma::modbus
