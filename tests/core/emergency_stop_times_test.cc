// DurationHistogram and EmergencyStopTimes: each duration lands in the bucket that holds it,
// each stop in its scope only, and the sums are exact.
#include "plugin/core/emergency_stop_times.h"

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

TEST(EmergencyStopTimesTest, ScopesAreCountedApartWithExactSums) {
  EmergencyStopTimes times;
  times.Observe(StopScope::kDevice, absl::Nanoseconds(123456));
  times.Observe(StopScope::kAll, absl::Nanoseconds(700001));
  times.Observe(StopScope::kAll, absl::Nanoseconds(299999));
  EXPECT_EQ(times.totals(StopScope::kDevice).count, 1u);
  EXPECT_EQ(times.totals(StopScope::kDevice).sum, absl::Nanoseconds(123456));
  EXPECT_EQ(times.totals(StopScope::kAll).count, 2u);
  EXPECT_EQ(times.totals(StopScope::kAll).sum, absl::Milliseconds(1));
  EXPECT_EQ(times.histogram(StopScope::kDevice).buckets()[BucketOf(0.0002)], 1u);
  EXPECT_STREQ(StopScopeLabel(StopScope::kAll), "all");
  EXPECT_STREQ(StopScopeLabel(StopScope::kDevice), "device");
}

}  // namespace
}  // namespace derma
