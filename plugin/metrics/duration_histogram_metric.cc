#include "plugin/metrics/duration_histogram_metric.h"

#include <limits>

namespace derma::metrics {

void FillHistogram(const DurationHistogram& histogram, prometheus::ClientMetric& metric) {
  const DurationHistogram::Buckets buckets = histogram.buckets();
  const DurationHistogram::Totals totals = histogram.totals();
  uint64_t cumulative = 0;
  for (size_t b = 0; b < DurationHistogram::kBounds.size(); ++b) {
    cumulative += buckets[b];
    metric.histogram.bucket.push_back({cumulative, DurationHistogram::kBounds[b]});
  }
  cumulative += buckets.back();
  metric.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = absl::ToDoubleSeconds(totals.sum);
}

}  // namespace derma::metrics
