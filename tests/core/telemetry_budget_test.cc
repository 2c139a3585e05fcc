// The fan-out's process-wide sample budget (telemetry_fanout.h): every subscription together
// holds at most about the budget, a stalled subscription is cut to its fair share while one
// that keeps up loses nothing, what a stalled one drops is counted, and an unsubscribed one
// gives its samples back.
#include <cstdint>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/core/telemetry_fanout.h"
#include "tests/core/telemetry_entries.h"

namespace derma::testing {
namespace {

constexpr size_t kBudget = 8 * TelemetryFanout::kMinFairShare;

uint64_t DroppedIn(const TelemetryDrain& drain) {
  uint64_t dropped = 0;
  for (const auto& [device, count] : drain.dropped) dropped += count;
  return dropped;
}

TEST(TelemetryBudgetTest, StalledSubscriptionsAreCutToTheirShareAndAReaderLosesNothing) {
  TelemetryFanout fanout;
  fanout.set_sample_budget(kBudget);
  SubscriptionOptions options;
  options.sample_capacity = 1 << 20;  // the budget, not the capacity, is what bites here
  std::vector<std::shared_ptr<TelemetrySubscription>> stalled;
  for (int i = 0; i < 3; ++i) stalled.push_back(fanout.Subscribe(options));
  std::shared_ptr<TelemetrySubscription> reader = fanout.Subscribe(options);

  uint64_t read = 0, reader_dropped = 0;
  constexpr uint64_t kPublished = 20 * kBudget;
  for (uint64_t i = 1; i <= kPublished; ++i) {
    fanout.Publish(MakeSample(0, i));
    if (i % 64 == 0) {  // the reader keeps up; the others never read
      TelemetryDrain drain = reader->Drain(1 << 20);
      read += drain.entries.size();
      reader_dropped += DroppedIn(drain);
    }
    ASSERT_LE(fanout.held_samples(), kBudget + 4) << "after sample " << i;
  }
  TelemetryDrain rest = reader->Drain(1 << 20);
  read += rest.entries.size();
  reader_dropped += DroppedIn(rest);
  EXPECT_EQ(read, kPublished);
  EXPECT_EQ(reader_dropped, 0u);
  for (const auto& subscription : stalled) {
    // Cut to about its share (a quarter of the budget, three stalled ones sharing the room the
    // reader leaves): far from the whole budget it would take alone.
    EXPECT_LE(subscription->held_samples(), kBudget / 2);
    // Everything it did not keep is counted as dropped, never lost silently.
    EXPECT_EQ(subscription->held_samples() + subscription->dropped_total(), kPublished);
  }
  EXPECT_EQ(fanout.dropped_total(), 3 * kPublished - fanout.held_samples());
}

TEST(TelemetryBudgetTest, ASubscriptionWhoseSamplesAreAllTakenDropsTheNewOne) {
  TelemetryFanout fanout;
  fanout.set_sample_budget(2 * TelemetryFanout::kMinFairShare);  // a share of 1024 for two
  SubscriptionOptions device0, device1;
  device0.devices = {0};
  device1.devices = {1};
  std::shared_ptr<TelemetrySubscription> slow = fanout.Subscribe(device0);
  std::shared_ptr<TelemetrySubscription> hog = fanout.Subscribe(device1);
  for (uint64_t i = 1; i <= 1500; ++i) fanout.Publish(MakeSample(0, i));  // under budget
  // The consumer takes one entry: the other 1499 are swapped out, its own now.
  ASSERT_EQ(slow->Drain(1).entries.size(), 1u);
  for (uint64_t i = 1; i <= 600; ++i) fanout.Publish(MakeSample(1, i));  // over budget now
  ASSERT_GE(fanout.held_samples(), fanout.sample_budget());
  fanout.Publish(MakeSample(0, 1501));
  EXPECT_EQ(slow->held_samples(), 1499u) << "nothing queued to drop: the new sample drops";
  EXPECT_EQ(slow->dropped_total(), 1u);
  TelemetryDrain taken = slow->Drain(1 << 20);
  EXPECT_EQ(taken.entries.size(), 1499u);
  EXPECT_EQ(DroppedIn(taken), 0u) << "the drop comes after every entry the consumer held";
  fanout.Publish(MakeSample(0, 1502));
  TelemetryDrain next = slow->Drain(1 << 20);
  EXPECT_EQ(next.entries.size(), 1u);
  EXPECT_EQ(DroppedIn(next), 1u);
  EXPECT_LE(hog->held_samples(), TelemetryFanout::kMinFairShare);
}

TEST(TelemetryBudgetTest, UnsubscribingGivesItsSamplesBack) {
  TelemetryFanout fanout;
  fanout.set_sample_budget(kBudget);
  std::shared_ptr<TelemetrySubscription> a = fanout.Subscribe({});
  std::shared_ptr<TelemetrySubscription> b = fanout.Subscribe({});
  for (uint64_t i = 1; i <= 100; ++i) fanout.Publish(MakeSample(0, i));
  EXPECT_EQ(fanout.held_samples(), 200u);
  a->Drain(10);  // some taken, some still queued: both count until unsubscribed
  EXPECT_EQ(fanout.held_samples(), 190u);
  fanout.Unsubscribe(a.get());
  EXPECT_EQ(fanout.held_samples(), 100u);
  a->Drain(1 << 20);  // a late drain of an unsubscribed one changes nothing
  EXPECT_EQ(fanout.held_samples(), 100u);
}

TEST(TelemetryBudgetTest, WithoutABudgetOnlyTheCapacityBounds) {
  TelemetryFanout fanout;
  SubscriptionOptions options;
  options.sample_capacity = 5000;
  std::shared_ptr<TelemetrySubscription> a = fanout.Subscribe(options);
  for (uint64_t i = 1; i <= 4000; ++i) fanout.Publish(MakeSample(0, i));
  EXPECT_EQ(a->held_samples(), 4000u);
  EXPECT_EQ(a->dropped_total(), 0u);
}

}  // namespace
}  // namespace derma::testing
