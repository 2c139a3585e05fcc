// Telemetry fan-out: ordering, filtering, decimation, bounded sample queues that drop the
// oldest samples (never events), edge-triggered wake-ups; and what a Device publishes.
#include <vector>

#include "gmock/gmock.h"
#include "plugin/core/telemetry_fanout.h"
#include "tests/core/device_fixture.h"
#include "tests/core/telemetry_entries.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;

TEST(TelemetrySubscriptionTest, DeliversSamplesInPublishOrder) {
  TelemetrySubscription subscription({});
  for (uint64_t i = 1; i <= 5; ++i) subscription.Offer(MakeSample(0, i));
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("s1", "s2", "s3", "s4", "s5"));
}

TEST(TelemetrySubscriptionTest, DrainTakesAtMostMaxEntries) {
  TelemetrySubscription subscription({});
  for (uint64_t i = 1; i <= 5; ++i) subscription.Offer(MakeSample(0, i));
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s1", "s2"));
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("s3", "s4", "s5"));
}

TEST(TelemetryFanoutTest, DeviceFilterDeliversOnlyRequestedDevices) {
  TelemetryFanout fanout;
  SubscriptionOptions options;
  options.devices = {1};
  auto subscription = fanout.Subscribe(options);
  fanout.Publish(MakeSample(0, 1));
  fanout.Publish(MakeSample(1, 2));
  fanout.Publish(MakeSample(2, 3));
  fanout.PublishEvent(0, MakeEvent(10));
  fanout.PublishEvent(1, MakeEvent(11));
  EXPECT_THAT(Describe(subscription->Drain(100)), ElementsAre("s2", "e11"));
}

TEST(TelemetrySubscriptionTest, SampleIntervalDecimatesPerDevice) {
  SubscriptionOptions options;
  options.sample_interval = absl::Milliseconds(100);
  TelemetrySubscription subscription(options);
  for (uint64_t i = 1; i <= 100; ++i) subscription.Offer(MakeSample(0, i));  // every 10 ms
  EXPECT_THAT(Describe(subscription.Drain(1000)),
              ElementsAre("s1", "s11", "s21", "s31", "s41", "s51", "s61", "s71", "s81", "s91"));
}

TEST(TelemetrySubscriptionTest, SlowConsumerKeepsNewestSamplesAndCountsDrops) {
  SubscriptionOptions options;
  options.sample_capacity = 8;
  TelemetrySubscription subscription(options);
  for (uint64_t i = 1; i <= 20; ++i) subscription.Offer(MakeSample(3, i));
  TelemetryDrain drain = subscription.Drain(100);
  EXPECT_THAT(Describe(drain), ElementsAre("s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20"));
  EXPECT_EQ(drain.dropped[3], 12u);
  EXPECT_EQ(subscription.dropped_total(), 12u);
}

TEST(TelemetrySubscriptionTest, DropCountsResetAfterDrain) {
  SubscriptionOptions options;
  options.sample_capacity = 8;
  TelemetrySubscription subscription(options);
  for (uint64_t i = 1; i <= 20; ++i) subscription.Offer(MakeSample(3, i));
  subscription.Drain(100);
  subscription.Offer(MakeSample(3, 21));
  TelemetryDrain drain = subscription.Drain(100);
  EXPECT_EQ(drain.dropped[3], 0u);
  EXPECT_EQ(subscription.dropped_total(), 12u);
}

TEST(TelemetrySubscriptionTest, EventsSurviveSampleOverflowInPublishOrder) {
  SubscriptionOptions options;
  options.sample_capacity = 2;
  TelemetrySubscription subscription(options);
  subscription.Offer(MakeSample(0, 1));
  subscription.OfferEvent(0, MakeEvent(1));
  subscription.Offer(MakeSample(0, 2));
  subscription.OfferEvent(0, MakeEvent(2));
  subscription.Offer(MakeSample(0, 3));
  subscription.Offer(MakeSample(0, 4));
  subscription.OfferEvent(0, MakeEvent(3));
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("e1", "e2", "s3", "s4", "e3"));
  EXPECT_FALSE(subscription.overflowed());
}

TEST(TelemetrySubscriptionTest, InterleavedSamplesAndEventsKeepPublishOrder) {
  TelemetrySubscription subscription({});
  subscription.Offer(MakeSample(0, 1));
  subscription.OfferEvent(0, MakeEvent(1));
  subscription.Offer(MakeSample(0, 2));
  subscription.OfferEvent(0, MakeEvent(2));
  subscription.OfferEvent(0, MakeEvent(3));
  subscription.Offer(MakeSample(0, 3));
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("s1", "e1", "s2", "e2", "e3", "s3"));
}

TEST(TelemetrySubscriptionTest, EventQueueOverflowMarksSubscriptionOverflowed) {
  SubscriptionOptions options;
  options.event_capacity = 2;
  TelemetrySubscription subscription(options);
  subscription.OfferEvent(0, MakeEvent(1));
  subscription.OfferEvent(0, MakeEvent(2));
  EXPECT_FALSE(subscription.overflowed());
  subscription.OfferEvent(0, MakeEvent(3));
  EXPECT_TRUE(subscription.overflowed());
}

TEST(TelemetrySubscriptionTest, WakeupIsEdgeTriggered) {
  TelemetrySubscription subscription({});
  int wakeups = 0;
  subscription.SetWakeup([&] { ++wakeups; });
  subscription.Offer(MakeSample(0, 1));
  subscription.Offer(MakeSample(0, 2));
  subscription.OfferEvent(0, MakeEvent(1));
  EXPECT_EQ(wakeups, 1);
  subscription.Drain(1);  // leaves entries queued: not re-armed
  subscription.Offer(MakeSample(0, 3));
  EXPECT_EQ(wakeups, 1);
  subscription.Drain(100);  // empties the queue: re-armed
  subscription.Offer(MakeSample(0, 4));
  EXPECT_EQ(wakeups, 2);
}

TEST(TelemetryFanoutTest, UnsubscribeStopsDelivery) {
  TelemetryFanout fanout;
  auto subscription = fanout.Subscribe({});
  fanout.Publish(MakeSample(0, 1));
  fanout.Unsubscribe(subscription.get());
  fanout.Publish(MakeSample(0, 2));
  fanout.PublishEvent(0, MakeEvent(1));
  EXPECT_THAT(Describe(subscription->Drain(100)), ElementsAre("s1"));
  EXPECT_EQ(fanout.subscriber_count(), 0u);
}

TEST(TelemetryFanoutTest, EverySubscriberGetsEverySample) {
  TelemetryFanout fanout;
  auto a = fanout.Subscribe({});
  auto b = fanout.Subscribe({});
  fanout.Publish(MakeSample(0, 1));
  EXPECT_THAT(Describe(a->Drain(100)), ElementsAre("s1"));
  EXPECT_THAT(Describe(b->Drain(100)), ElementsAre("s1"));
}

class DeviceTelemetryTest : public DeviceFixture {};

TEST_F(DeviceTelemetryTest, OneSamplePerTickWithConsecutiveSequenceAndDeviceTime) {
  auto samples = fanout_.Subscribe({});
  MakeDevice();
  Run(absl::Milliseconds(50));
  std::vector<uint64_t> sequences;
  std::vector<int64_t> times;
  for (const TelemetryEntry& entry : samples->Drain(100).entries) {
    if (entry.event != nullptr) continue;
    sequences.push_back(entry.sample.sequence);
    times.push_back(entry.sample.device_time_us - kEpochUs);
  }
  EXPECT_THAT(sequences, ElementsAre(1u, 2u, 3u, 4u, 5u, 6u));  // Initialize + 5 ticks
  EXPECT_THAT(times, ElementsAre(0, 10000, 20000, 30000, 40000, 50000));
}

TEST_F(DeviceTelemetryTest, SampleReportsOutputOnWhileRunning) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  auto samples = fanout_.Subscribe({});
  device_->Tick();
  TelemetryDrain drain = samples->Drain(100);
  ASSERT_EQ(drain.entries.size(), 1u);
  EXPECT_TRUE(drain.entries[0].sample.output_on);
  EXPECT_EQ(drain.entries[0].sample.kind, v1::DEVICE_KIND_MICRONEEDLING);
}

TEST_F(DeviceTelemetryTest, CommandSampleMayShareTheDeviceTimeOfTheTickBeforeIt) {
  MakeDevice();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  auto samples = fanout_.Subscribe({});
  Run(absl::Milliseconds(10));  // one tick
  device_->Stop();              // at the tick's instant: the clock has not moved
  std::vector<Sample> made;
  for (const TelemetryEntry& entry : samples->Drain(100).entries) {
    if (entry.event == nullptr) made.push_back(entry.sample);
  }
  ASSERT_EQ(made.size(), 2u);
  EXPECT_EQ(made[1].sequence, made[0].sequence + 1) << "sequence orders a device's samples";
  EXPECT_EQ(made[1].device_time_us, made[0].device_time_us) << "telemetry.proto: may be equal";
  EXPECT_TRUE(made[0].output_on);
  EXPECT_FALSE(made[1].output_on);
}

TEST_F(DeviceTelemetryTest, ViewIncludesLatestSample) {
  MakeDevice();
  Run(absl::Milliseconds(30));
  const v1::Device device = device_->view().Read();
  EXPECT_EQ(device.latest_sample().sequence(), 4u);
  EXPECT_EQ(device.latest_sample().device_time_us(), kEpochUs + 30000);
  EXPECT_TRUE(device.latest_sample().has_microneedling());
}

TEST_F(DeviceTelemetryTest, EventsCarryConsecutiveSequenceNumbers) {
  MakeDevice();
  Events();
  DriveTo(v1::DEVICE_STATE_RUNNING);
  device_->Stop();
  std::vector<v1::DeviceEvent> events = Events();
  ASSERT_GE(events.size(), 2u);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), events[i - 1].sequence() + 1);
  }
}

TEST_F(DeviceTelemetryTest, LatestSampleShowsOutputOffAsSoonAsAStopReturns) {
  MakeDevice();
  for (auto stop : {+[](Device& d) { d.Stop(); }, +[](Device& d) { d.EmergencyStop(); },
                    +[](Device& d) { d.Shutdown(); }}) {
    (void)device_->ResetEmergencyStop(lease_);
    DriveTo(v1::DEVICE_STATE_RUNNING);
    device_->Tick();
    ASSERT_TRUE(device_->view().latest_sample().output_on);
    stop(*device_);
    EXPECT_FALSE(device_->view().latest_sample().output_on)
        << "the stop returned but telemetry still shows the output on";
  }
}

}  // namespace
}  // namespace derma::testing
