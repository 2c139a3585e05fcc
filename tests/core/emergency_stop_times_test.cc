// EmergencyStopTimes: each stop lands in the bucket of its duration and in its scope only, and
// the sum is exact.
#include "plugin/core/emergency_stop_times.h"

#include "gtest/gtest.h"

namespace derma {
namespace {

size_t BucketOf(double bound) {
  for (size_t b = 0; b < EmergencyStopTimes::kBounds.size(); ++b) {
    if (EmergencyStopTimes::kBounds[b] == bound) return b;
  }
  return EmergencyStopTimes::kBounds.size();
}

TEST(EmergencyStopTimesTest, AStopLandsInTheSmallestBucketThatHoldsIt) {
  EmergencyStopTimes times;
  times.Observe(StopScope::kAll, absl::Microseconds(120));  // ≤ 200 µs
  times.Observe(StopScope::kAll, absl::Microseconds(200));  // ≤ 200 µs (bounds are inclusive)
  times.Observe(StopScope::kAll, absl::Microseconds(900));  // ≤ 1 ms
  times.Observe(StopScope::kAll, absl::Seconds(30));        // +Inf
  const EmergencyStopTimes::Buckets buckets = times.buckets(StopScope::kAll);
  EXPECT_EQ(buckets[BucketOf(0.0002)], 2u);
  EXPECT_EQ(buckets[BucketOf(0.001)], 1u);
  EXPECT_EQ(buckets.back(), 1u);
  uint64_t total = 0;
  for (uint64_t count : buckets) total += count;
  EXPECT_EQ(total, 4u);
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
  EXPECT_STREQ(StopScopeLabel(StopScope::kAll), "all");
  EXPECT_STREQ(StopScopeLabel(StopScope::kDevice), "device");
}

}  // namespace
}  // namespace derma
