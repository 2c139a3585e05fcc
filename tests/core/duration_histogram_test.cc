// DurationHistogram: each duration lands in the smallest bucket that holds it (bounds are
// inclusive), and the count and the sum are exact.
#include "plugin/core/duration_histogram.h"

#include "gtest/gtest.h"

namespace derma {
namespace {

size_t BucketOf(double bound) {
  for (size_t b = 0; b < DurationHistogram::kBounds.size(); ++b) {
    if (DurationHistogram::kBounds[b] == bound) return b;
  }
  return DurationHistogram::kBounds.size();
}

TEST(DurationHistogramTest, ADurationLandsInTheSmallestBucketThatHoldsIt) {
  DurationHistogram histogram;
  histogram.Observe(absl::Microseconds(120));  // ≤ 200 µs
  histogram.Observe(absl::Microseconds(200));  // ≤ 200 µs (bounds are inclusive)
  histogram.Observe(absl::Microseconds(900));  // ≤ 1 ms
  histogram.Observe(absl::Seconds(30));        // +Inf
  const DurationHistogram::Buckets buckets = histogram.buckets();
  EXPECT_EQ(buckets[BucketOf(0.0002)], 2u);
  EXPECT_EQ(buckets[BucketOf(0.001)], 1u);
  EXPECT_EQ(buckets.back(), 1u);
  uint64_t total = 0;
  for (uint64_t count : buckets) total += count;
  EXPECT_EQ(total, 4u);
  EXPECT_EQ(histogram.totals().count, 4u);
}

TEST(DurationHistogramTest, TheSumIsExactToTheNanosecond) {
  DurationHistogram histogram;
  histogram.Observe(absl::Nanoseconds(700001));
  histogram.Observe(absl::Nanoseconds(299999));
  EXPECT_EQ(histogram.totals().sum, absl::Milliseconds(1));
}

}  // namespace
}  // namespace derma
