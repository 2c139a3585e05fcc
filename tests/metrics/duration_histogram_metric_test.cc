// FillHistogram: a DurationHistogram as a Prometheus histogram series: cumulative buckets at
// every bound, +Inf last, the count equal to +Inf's, the sum in seconds.
#include "plugin/metrics/duration_histogram_metric.h"

#include <limits>

#include "gtest/gtest.h"

namespace derma::metrics {
namespace {

TEST(FillHistogramTest, BucketsAreCumulativeWithInfLastAndTheSumInSeconds) {
  DurationHistogram histogram;
  histogram.Observe(absl::Microseconds(40));   // ≤ 50 µs, the first bucket
  histogram.Observe(absl::Microseconds(150));  // ≤ 200 µs
  histogram.Observe(absl::Seconds(20));        // +Inf
  prometheus::ClientMetric metric;
  FillHistogram(histogram, metric);
  const auto& buckets = metric.histogram.bucket;
  ASSERT_EQ(buckets.size(), DurationHistogram::kBounds.size() + 1);
  for (size_t b = 0; b < DurationHistogram::kBounds.size(); ++b) {
    EXPECT_EQ(buckets[b].upper_bound, DurationHistogram::kBounds[b]);
  }
  EXPECT_EQ(buckets[0].cumulative_count, 1u);                                      // 50 µs
  EXPECT_EQ(buckets[1].cumulative_count, 1u);                                      // 100 µs
  EXPECT_EQ(buckets[2].cumulative_count, 2u);                                      // 200 µs
  EXPECT_EQ(buckets[DurationHistogram::kBounds.size() - 1].cumulative_count, 2u);  // 10 s
  EXPECT_EQ(buckets.back().upper_bound, std::numeric_limits<double>::infinity());
  EXPECT_EQ(buckets.back().cumulative_count, 3u);
  EXPECT_EQ(metric.histogram.sample_count, 3u);
  EXPECT_DOUBLE_EQ(metric.histogram.sample_sum, 20.00019);
}

}  // namespace
}  // namespace derma::metrics
