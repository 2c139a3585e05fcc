// DeviceCounters: the event counts the metrics exporter reads — faults by kind, e-stops, lease
// expirations, run durations — and the fan-out's dropped-sample total.
#include "plugin/core/device_counters.h"

#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

class DeviceCountersTest : public DeviceFixture {
 protected:
  void SetUp() override { MakeDevice(); }
  const DeviceCounters& counters() { return device_->view().counters(); }
};

TEST_F(DeviceCountersTest, CountsEachRaisedFaultByKindOnce) {
  driver_->set_faults(FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE));
  Run(absl::Milliseconds(50));  // the condition stays present: still one fault
  EXPECT_EQ(counters().faults(v1::FAULT_KIND_OVER_TEMPERATURE), 1u);
  EXPECT_EQ(counters().faults(v1::FAULT_KIND_MOTOR_STALL), 0u);
}

TEST_F(DeviceCountersTest, CountsLinkDropsAndDriverErrors) {
  driver_->set_link_up(false);
  device_->Tick();
  driver_->set_link_up(true);
  device_->Tick();
  driver_->set_fail_reads(true);
  Run(absl::Milliseconds(50));
  EXPECT_EQ(counters().faults(v1::FAULT_KIND_LINK_DROP), 1u);
  EXPECT_EQ(counters().faults(v1::FAULT_KIND_UNSPECIFIED), 1u);
}

TEST_F(DeviceCountersTest, CountsEmergencyStopsAndLeaseExpirations) {
  device_->EmergencyStop();
  device_->EmergencyStop();
  EXPECT_EQ(counters().emergency_stops(), 2u);
  Lease(absl::Seconds(1));
  Run(absl::Seconds(2));
  EXPECT_EQ(counters().lease_expirations(), 1u);
  EXPECT_EQ(counters().dead_man_stops(), 0u) << "the device was not running";
}

TEST_F(DeviceCountersTest, CountsDeadManStopsOnlyWhenTheLeaseExpiresWhileRunning) {
  Lease(absl::Seconds(1));
  DriveTo(v1::DEVICE_STATE_RUNNING);
  Run(absl::Seconds(2));
  EXPECT_EQ(counters().lease_expirations(), 1u);
  EXPECT_EQ(counters().dead_man_stops(), 1u);
}

TEST_F(DeviceCountersTest, ObservesTheDurationOfEveryEndedRun) {
  v1::RunStep step;
  *step.mutable_settings() = PenSettings(1.0, 100);
  step.set_duration_s(15);
  ASSERT_TRUE(device_->StartRun(Lease(), {step}, "").ok());
  Run(absl::Seconds(16));
  EXPECT_DOUBLE_EQ(counters().run_seconds_sum(), 15.0);
  const DeviceCounters::RunBuckets buckets = counters().run_buckets();
  EXPECT_EQ(buckets[2], 1u) << "15 s falls in the (10, 30] bucket";
  uint64_t runs = 0;
  for (uint64_t count : buckets) runs += count;
  EXPECT_EQ(runs, 1u);
}

TEST(DeviceCountersBucketsTest, LongRunsLandInTheInfBucket) {
  DeviceCounters counters;
  counters.ObserveRunDuration(1);
  counters.ObserveRunDuration(7200);
  const DeviceCounters::RunBuckets buckets = counters.run_buckets();
  EXPECT_EQ(buckets.front(), 1u) << "1 s is ≤ the first bound";
  EXPECT_EQ(buckets.back(), 1u);
}

TEST(FanoutDropTotalTest, CountsDropsOfEverySubscription) {
  TelemetryFanout fanout;
  SubscriptionOptions small;
  small.sample_capacity = 2;
  auto a = fanout.Subscribe(small);
  auto b = fanout.Subscribe(small);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    Sample sample;
    sample.sequence = seq;
    fanout.Publish(sample);
  }
  EXPECT_EQ(fanout.dropped_total(), 6u) << "3 dropped by each of 2 subscriptions";
}

}  // namespace
}  // namespace derma::testing
