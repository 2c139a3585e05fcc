// FillHistogram: a DurationHistogram (plugin/core/duration_histogram.h) as one Prometheus
// histogram series in seconds, cumulative buckets and +Inf. Layer: plugin/metrics. Thread-safe
// (reads the histogram's atomics; writes only the caller's metric).
#ifndef DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_
#define DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_

#include "plugin/core/duration_histogram.h"
#include "prometheus/client_metric.h"

namespace derma::metrics {

// Fills `metric.histogram` from `histogram`. The count is the buckets' total, so it always
// equals the +Inf bucket; a duration observed during the read may be in one and not yet in the
// sum.
void FillHistogram(const DurationHistogram& histogram, prometheus::ClientMetric& metric);

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_
