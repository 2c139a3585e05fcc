// FillHistogram: bucket counts as one Prometheus histogram series in seconds, cumulative
// buckets and +Inf, the count being the buckets' total (so it always equals the +Inf bucket); a
// DurationHistogram (plugin/core/duration_histogram.h) directly. Layer: plugin/metrics.
// Thread-safe (reads the histogram's atomics; writes only the caller's metric).
#ifndef DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_
#define DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_

#include <cstdint>

#include "absl/types/span.h"
#include "plugin/core/duration_histogram.h"
#include "prometheus/client_metric.h"

namespace derma::metrics {

// Fills `metric.histogram` from per-bucket (not cumulative) counts, one more than `bounds`
// (the last is +Inf), and their sum in seconds. An observation counted while the counts were
// read may be in the buckets and not yet in the sum.
void FillHistogram(absl::Span<const double> bounds, absl::Span<const uint64_t> per_bucket,
                   double sum_seconds, prometheus::ClientMetric& metric);
void FillHistogram(const DurationHistogram& histogram, prometheus::ClientMetric& metric);

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_DURATION_HISTOGRAM_METRIC_H_
