// LinkExecutor: the one thread of a link — urgent tasks before commands before polls, polls
// coalesced, none before StartPolling, wake-ups at their time, back-to-back polling. Each test
// holds the thread with a task that waits on a notification, so what is queued meanwhile is
// known exactly, and waits for conditions, never for time.
#include "plugin/core/link_executor.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace derma {
namespace {

using ::testing::ElementsAre;

class Recorder {
 public:
  void Add(std::string what) {
    absl::MutexLock lock(&mu_);
    order_.push_back(std::move(what));
  }
  // Waits until `count` entries are recorded; returns them.
  std::vector<std::string> WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return order_.size() >= count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
};

TEST(LinkExecutorTest, UrgentTasksGoBeforeCommandsAndCommandsBeforePolls) {
  Recorder recorder;
  LinkExecutor link("test-link");
  const uint32_t key = link.AddPoll([&] { recorder.Add("poll"); });
  link.StartPolling();
  absl::Notification release;
  absl::Notification holding;
  link.Schedule([&] {
    holding.Notify();
    release.WaitForNotification();
  });
  holding.WaitForNotification();
  link.RequestPoll(key);
  link.Schedule([&] { recorder.Add("command"); });
  link.ScheduleUrgent([&] { recorder.Add("stop"); });
  release.Notify();
  EXPECT_THAT(recorder.WaitFor(3), ElementsAre("stop", "command", "poll"));
}

TEST(LinkExecutorTest, PollsRequestedWhileOneIsPendingCoalesce) {
  Recorder recorder;
  LinkExecutor link("test-link");
  const uint32_t key = link.AddPoll([&] { recorder.Add("poll"); });
  link.StartPolling();
  absl::Notification release;
  absl::Notification holding;
  link.Schedule([&] {
    holding.Notify();
    release.WaitForNotification();
  });
  holding.WaitForNotification();
  for (int i = 0; i < 5; ++i) link.RequestPoll(key);
  release.Notify();
  recorder.WaitFor(1);
  // A marker poll requested after the first ran shows the queue is drained.
  const uint32_t marker = link.AddPoll([&] { recorder.Add("marker"); });
  link.RequestPoll(marker);
  EXPECT_THAT(recorder.WaitFor(2), ElementsAre("poll", "marker"));
  EXPECT_EQ(link.polls_coalesced(), 4u);
}

TEST(LinkExecutorTest, NoPollRunsBeforeStartPolling) {
  Recorder recorder;
  LinkExecutor link("test-link");
  const uint32_t key = link.AddPoll([&] { recorder.Add("poll"); });
  link.RequestPoll(key);
  link.Schedule([&] { recorder.Add("command"); });
  EXPECT_THAT(recorder.WaitFor(1), ElementsAre("command"));
  EXPECT_EQ(link.polls_run(), 0u);
  link.StartPolling();
  EXPECT_THAT(recorder.WaitFor(2), ElementsAre("command", "poll"));
}

TEST(LinkExecutorTest, AWakeupPollsAtItsTimeAndNotBefore) {
  Recorder recorder;
  absl::Time ran_at;
  LinkExecutor link("test-link");
  const uint32_t key = link.AddPoll([&] {
    ran_at = absl::Now();
    recorder.Add("poll");
  });
  link.StartPolling();
  const absl::Time due = absl::Now() + absl::Milliseconds(50);
  link.RequestPollAt(key, due);
  ASSERT_THAT(recorder.WaitFor(1), ElementsAre("poll"));
  EXPECT_GE(ran_at, due);
}

TEST(LinkExecutorTest, ACancelledWakeupDoesNotPoll) {
  Recorder recorder;
  LinkExecutor link("test-link");
  const uint32_t key = link.AddPoll([&] { recorder.Add("poll"); });
  const uint32_t marker = link.AddPoll([&] { recorder.Add("marker"); });
  link.StartPolling();
  link.RequestPollAt(key, absl::Now() + absl::Milliseconds(30));
  link.RequestPollAt(key, absl::InfiniteFuture());
  link.RequestPollAt(marker, absl::Now() + absl::Milliseconds(60));
  EXPECT_THAT(recorder.WaitFor(1), ElementsAre("marker"));
}

TEST(LinkExecutorTest, BackToBackPollsRoundRobinWithoutRequests) {
  Recorder recorder;
  LinkExecutor link("test-link", /*back_to_back=*/true);
  link.AddPoll([&] { recorder.Add("a"); });
  link.AddPoll([&] { recorder.Add("b"); });
  link.StartPolling();
  const std::vector<std::string> order = recorder.WaitFor(6);
  ASSERT_GE(order.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(order[i], i % 2 == 0 ? "a" : "b");
}

}  // namespace
}  // namespace derma
