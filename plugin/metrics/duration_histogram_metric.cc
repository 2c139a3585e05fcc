#include "plugin/metrics/duration_histogram_metric.h"

#include <limits>

namespace derma::metrics {

void FillHistogram(absl::Span<const double> bounds, absl::Span<const uint64_t> per_bucket,
                   double sum_seconds, prometheus::ClientMetric& metric) {
  uint64_t cumulative = 0;
  for (size_t b = 0; b < bounds.size(); ++b) {
    cumulative += per_bucket[b];
    metric.histogram.bucket.push_back({cumulative, bounds[b]});
  }
  cumulative += per_bucket.back();
  metric.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum_seconds;
}

void FillHistogram(const DurationHistogram& histogram, prometheus::ClientMetric& metric) {
  const DurationHistogram::Buckets buckets = histogram.buckets();
  FillHistogram(DurationHistogram::kBounds, buckets, absl::ToDoubleSeconds(histogram.totals().sum),
                metric);
}

}  // namespace derma::metrics
