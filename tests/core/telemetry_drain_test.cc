// TelemetrySubscription::Drain takes the shared queues by swapping them out, then serves the
// batch it took: publish order across swaps, max_entries, drops reported once, and the wakeup
// contract (telemetry_fanout.h): a Drain without `more` (fewer than max_entries, none held back
// behind drops) re-arms the wakeup, one with `more` does not, and a consumer that keeps to that
// loses no entry.
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/core/telemetry_fanout.h"
#include "tests/core/telemetry_entries.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(TelemetryDrainTest, PublishOrderHoldsAcrossEntriesTakenEarlierAndNewOnes) {
  TelemetrySubscription subscription({});
  subscription.Offer(MakeSample(0, 1));
  subscription.OfferEvent(0, MakeEvent(1));
  subscription.Offer(MakeSample(0, 2));
  subscription.OfferEvent(0, MakeEvent(2));
  EXPECT_THAT(Describe(subscription.Drain(3)), ElementsAre("s1", "e1", "s2"));  // e2 kept back
  subscription.Offer(MakeSample(0, 3));
  subscription.OfferEvent(0, MakeEvent(3));
  subscription.Offer(MakeSample(0, 4));
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("e2", "s3", "e3", "s4"));
}

TEST(TelemetryDrainTest, MaxEntriesIsRespectedAndTheNextDrainReturnsTheRest) {
  TelemetrySubscription subscription({});
  for (uint64_t i = 1; i <= 5; ++i) subscription.Offer(MakeSample(0, i));
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s1", "s2"));
  subscription.Offer(MakeSample(0, 6));
  subscription.Offer(MakeSample(0, 7));
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s3", "s4"));
  // The rest of the batch taken earlier, then what came since, within one Drain.
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s5", "s6"));
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s7"));
  EXPECT_THAT(Describe(subscription.Drain(2)), IsEmpty());
}

TEST(TelemetryDrainTest, DropsAreReportedOnceWithTheFirstEntryAfterThem) {
  SubscriptionOptions options;
  options.sample_capacity = 4;
  TelemetrySubscription subscription(options);
  for (uint64_t i = 1; i <= 10; ++i) subscription.Offer(MakeSample(3, i));  // s1..s6 dropped
  TelemetryDrain first = subscription.Drain(1);
  EXPECT_THAT(Describe(first), ElementsAre("s7"));
  EXPECT_THAT(first.dropped, UnorderedElementsAre(Pair(3u, 6u)));
  // s8..s10 are the consumer's now: never dropped. The shared queue drops s11 and s12.
  for (uint64_t i = 11; i <= 16; ++i) subscription.Offer(MakeSample(3, i));
  TelemetryDrain taken = subscription.Drain(3);
  EXPECT_THAT(Describe(taken), ElementsAre("s8", "s9", "s10"));
  EXPECT_THAT(taken.dropped, IsEmpty()) << "s11 and s12 came after these";
  TelemetryDrain next = subscription.Drain(100);
  EXPECT_THAT(Describe(next), ElementsAre("s13", "s14", "s15", "s16"));
  EXPECT_THAT(next.dropped, UnorderedElementsAre(Pair(3u, 2u)));
  EXPECT_THAT(subscription.Drain(100).dropped, IsEmpty());
  EXPECT_EQ(subscription.dropped_total(), 8u);
}

// Found by the Python client's slow-reader test: a Drain that returned the rest of a batch
// taken earlier and then entries queued behind drops reported the drops with the earlier
// entries, so the stream put them before samples they followed (a gap no count explained).
TEST(TelemetryDrainTest, EntriesQueuedBehindDropsStartTheirOwnDrain) {
  SubscriptionOptions options;
  options.sample_capacity = 4;
  TelemetrySubscription subscription(options);
  int wakeups = 0;
  subscription.SetWakeup([&] { ++wakeups; });
  for (uint64_t i = 1; i <= 4; ++i) subscription.Offer(MakeSample(3, i));
  EXPECT_THAT(Describe(subscription.Drain(1)), ElementsAre("s1"));          // takes s1..s4
  for (uint64_t i = 5; i <= 10; ++i) subscription.Offer(MakeSample(3, i));  // s5, s6 dropped
  TelemetryDrain rest = subscription.Drain(100);
  EXPECT_THAT(Describe(rest), ElementsAre("s2", "s3", "s4"));
  EXPECT_THAT(rest.dropped, IsEmpty());
  EXPECT_TRUE(rest.more) << "stopped before the entries that follow the drops";
  TelemetryDrain after = subscription.Drain(100);
  EXPECT_THAT(Describe(after), ElementsAre("s7", "s8", "s9", "s10"));
  EXPECT_THAT(after.dropped, UnorderedElementsAre(Pair(3u, 2u)));
  EXPECT_FALSE(after.more);
  const int before = wakeups;
  subscription.Offer(MakeSample(3, 11));
  EXPECT_EQ(wakeups, before + 1) << "the Drain without `more` re-armed the wakeup";
}

TEST(TelemetryDrainTest, DrainReturningFewerThanMaxEntriesReArmsTheWakeup) {
  TelemetrySubscription subscription({});
  int wakeups = 0;
  subscription.SetWakeup([&] { ++wakeups; });
  subscription.Offer(MakeSample(0, 1));
  subscription.Offer(MakeSample(0, 2));
  ASSERT_EQ(wakeups, 1);
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("s1", "s2"));
  subscription.Offer(MakeSample(0, 3));
  EXPECT_EQ(wakeups, 2);
  EXPECT_THAT(Describe(subscription.Drain(100)), ElementsAre("s3"));
  EXPECT_THAT(Describe(subscription.Drain(100)), IsEmpty());  // re-arms again: harmless
  subscription.OfferEvent(0, MakeEvent(1));
  EXPECT_EQ(wakeups, 3);
}

TEST(TelemetryDrainTest, DrainReturningMaxEntriesDoesNotReArmEvenWhenNothingIsLeft) {
  TelemetrySubscription subscription({});
  int wakeups = 0;
  subscription.SetWakeup([&] { ++wakeups; });
  subscription.Offer(MakeSample(0, 1));
  subscription.Offer(MakeSample(0, 2));
  ASSERT_EQ(wakeups, 1);
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s1", "s2"));
  subscription.Offer(MakeSample(0, 3));
  EXPECT_EQ(wakeups, 1) << "the consumer must drain again; no wakeup";
  EXPECT_THAT(Describe(subscription.Drain(2)), ElementsAre("s3"));
  subscription.Offer(MakeSample(0, 4));
  EXPECT_EQ(wakeups, 2);
}

TEST(TelemetryDrainTest, EntriesOfferedWhileTheConsumerHoldsTakenOnesAreNotLost) {
  TelemetrySubscription subscription({});
  int wakeups = 0;
  subscription.SetWakeup([&] { ++wakeups; });
  for (uint64_t i = 1; i <= 3; ++i) subscription.Offer(MakeSample(0, i));
  EXPECT_THAT(Describe(subscription.Drain(1)), ElementsAre("s1"));  // takes s1..s3
  subscription.OfferEvent(0, MakeEvent(1));                         // arrives meanwhile
  EXPECT_THAT(Describe(subscription.Drain(1)), ElementsAre("s2"));
  EXPECT_THAT(Describe(subscription.Drain(1)), ElementsAre("s3"));
  EXPECT_THAT(Describe(subscription.Drain(10)), ElementsAre("e1"));
  EXPECT_EQ(wakeups, 1);
  subscription.Offer(MakeSample(0, 4));
  EXPECT_EQ(wakeups, 2) << "the Drain that returned e1 alone re-armed the wakeup";
}

// A device thread offers while the consumer drains: a consumer that drains after each wakeup
// until a Drain returns without `more` receives every entry, in order.
TEST(TelemetryDrainTest, ConsumerKeepingToTheContractReceivesEveryEntryOfAConcurrentDevice) {
  constexpr uint64_t kSamples = 20000;
  constexpr uint64_t kEvents = kSamples / 1000;
  constexpr size_t kMaxEntries = 64;
  SubscriptionOptions options;
  options.sample_capacity = kSamples;  // no drops: every sample must arrive
  TelemetrySubscription subscription(options);
  absl::Mutex mu;
  bool woken = false;
  subscription.SetWakeup([&] {
    absl::MutexLock lock(&mu);  // the consumer never holds it while draining
    woken = true;
  });
  std::thread device([&] {
    for (uint64_t i = 1; i <= kSamples; ++i) {
      subscription.Offer(MakeSample(0, i));
      if (i % 1000 == 0) subscription.OfferEvent(0, MakeEvent(i / 1000));
    }
  });
  uint64_t next_sample = 1;
  uint64_t next_event = 1;
  bool in_order = true;
  while (next_sample <= kSamples || next_event <= kEvents) {
    {
      absl::MutexLock lock(&mu);
      if (!mu.AwaitWithTimeout(absl::Condition(&woken), absl::Seconds(20))) break;  // lost
      woken = false;
    }
    TelemetryDrain drain;
    do {
      drain = subscription.Drain(kMaxEntries);
      for (const TelemetryEntry& entry : drain.entries) {
        if (entry.event != nullptr) {
          in_order &= entry.event->sequence() == next_event++;
        } else {
          in_order &= entry.sample.sequence == next_sample++;
        }
      }
    } while (drain.more);
  }
  device.join();
  EXPECT_EQ(next_sample, kSamples + 1) << "a wakeup was lost";
  EXPECT_EQ(next_event, kEvents + 1) << "a wakeup was lost";
  EXPECT_TRUE(in_order);
}

}  // namespace
}  // namespace derma::testing
