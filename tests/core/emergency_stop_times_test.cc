// EmergencyStopTimes: each stop is counted in its scope only, with exact sums.
#include "plugin/core/emergency_stop_times.h"

#include "gtest/gtest.h"

namespace derma {
namespace {

TEST(EmergencyStopTimesTest, ScopesAreCountedApartWithExactSums) {
  EmergencyStopTimes times;
  times.Observe(StopScope::kDevice, absl::Nanoseconds(123456));
  times.Observe(StopScope::kAll, absl::Nanoseconds(700001));
  times.Observe(StopScope::kAll, absl::Nanoseconds(299999));
  EXPECT_EQ(times.totals(StopScope::kDevice).count, 1u);
  EXPECT_EQ(times.totals(StopScope::kDevice).sum, absl::Nanoseconds(123456));
  EXPECT_EQ(times.totals(StopScope::kAll).count, 2u);
  EXPECT_EQ(times.totals(StopScope::kAll).sum, absl::Milliseconds(1));
  // 123.456 µs: in the 200 µs bucket of the device scope, nowhere in the all-devices scope.
  EXPECT_EQ(times.histogram(StopScope::kDevice).buckets()[2], 1u);
  EXPECT_EQ(times.histogram(StopScope::kAll).buckets()[2], 0u);
  EXPECT_STREQ(StopScopeLabel(StopScope::kAll), "all");
  EXPECT_STREQ(StopScopeLabel(StopScope::kDevice), "device");
}

}  // namespace
}  // namespace derma
