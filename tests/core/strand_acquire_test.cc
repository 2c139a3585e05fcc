// Strand::DispatchUrgent, TryAcquire and Release: urgent work run on the caller's thread ahead
// of queued tasks, and a strand held by a caller running nothing else until it is released.
// Orderings run on a ManualExecutor (deterministic); the no-overlap guarantee on a real
// ThreadPoolExecutor, waiting with absl synchronization, never sleeping.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/core/executor.h"

namespace derma {
namespace {

using ::testing::ElementsAre;

TEST(StrandDispatchUrgentTest, RunsOnTheCallingThreadAheadOfQueuedWork) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("queued"); });
  strand.DispatchUrgent([&log] { log.push_back("urgent"); });
  EXPECT_THAT(log, ElementsAre("urgent")) << "ran before DispatchUrgent returned";
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("urgent", "queued"));
}

TEST(StrandDispatchUrgentTest, WhileATaskRunsItQueuesAheadOfNormalWork) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Dispatch([&] {
    log.push_back("running");
    strand.Post([&log] { log.push_back("normal"); });
    strand.DispatchUrgent([&log] { log.push_back("urgent"); });
    EXPECT_EQ(log.size(), 1u) << "nothing else runs on the strand while a task runs";
  });
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("running", "urgent", "normal"));
}

TEST(StrandAcquireTest, AHeldStrandRunsNothingUntilReleased) {
  ManualExecutor executor;
  Strand strand(executor);
  ASSERT_TRUE(strand.TryAcquire());
  EXPECT_FALSE(strand.TryAcquire()) << "held once is held";
  bool ran = false;
  strand.Post([&ran] { ran = true; });
  executor.RunUntilIdle();
  EXPECT_FALSE(ran) << "a drain finds the strand held and leaves it";
  std::vector<Task> drains;
  strand.Release(drains);
  ASSERT_EQ(drains.size(), 1u) << "the task queued meanwhile needs a drain";
  executor.ScheduleAll(std::move(drains), /*urgent=*/false);
  executor.RunUntilIdle();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(strand.TryAcquire()) << "released, it can be taken again";
  strand.Release(drains);
  EXPECT_TRUE(drains.empty()) << "nothing queued, nothing to drain";
}

TEST(StrandAcquireTest, UrgentWorkQueuedWhileHeldIsScheduledAtRelease) {
  ManualExecutor executor;
  Strand strand(executor);
  ASSERT_TRUE(strand.TryAcquire());
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("normal"); });
  strand.PostUrgent([&log] { log.push_back("urgent"); });
  std::vector<Task> drains;
  strand.Release(drains);
  EXPECT_TRUE(drains.empty()) << "the urgent drain goes straight to the executor";
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("urgent", "normal"));
}

TEST(StrandAcquireTest, TakesOnlyAnIdleStrandWhenAskedForIdle) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("queued"); });
  EXPECT_FALSE(strand.TryAcquireIdle()) << "a queued task must run first";
  executor.RunUntilIdle();
  ASSERT_TRUE(strand.TryAcquireIdle()) << "nothing running or queued";
  EXPECT_FALSE(strand.TryAcquireIdle()) << "held once is held";
  strand.Post([&log] { log.push_back("after"); });
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("queued")) << "a held strand runs nothing";
  std::vector<Task> drains;
  strand.Release(drains);
  executor.ScheduleAll(std::move(drains), /*urgent=*/false);
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("queued", "after"));
}

TEST(StrandAcquireTest, CannotTakeAStrandWhileATaskRuns) {
  ManualExecutor executor;
  Strand strand(executor);
  bool acquired = true;
  strand.Dispatch([&] { acquired = strand.TryAcquire(); });
  EXPECT_FALSE(acquired);
}

// Callers posting, dispatching and holding the strand from several threads at once: no two
// of its tasks (or a task and a holder's work) ever overlap, and every task runs.
TEST(StrandAcquireTest, HoldersPostsAndDispatchesFromManyThreadsNeverOverlap) {
  auto executor = std::make_unique<ThreadPoolExecutor>(2);
  Strand strand(*executor);
  constexpr int kThreads = 3;
  constexpr int kPerThread = 3000;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  auto work = [&] {
    if (inside.fetch_add(1) != 0) overlapped = true;
    inside.fetch_sub(1);
  };
  absl::BlockingCounter done(kThreads * kPerThread);
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Task task = [&] {
          work();
          done.DecrementCount();
        };
        if ((i + t) % 3 == 0) {
          strand.Post(std::move(task));
        } else if ((i + t) % 3 == 1) {
          strand.DispatchUrgent(std::move(task));
        } else if (strand.TryAcquire()) {
          std::move(task)();
          std::vector<Task> drains;
          strand.Release(drains);
          executor->ScheduleAll(std::move(drains), /*urgent=*/false);
        } else {
          strand.PostUrgent(std::move(task));
        }
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  done.Wait();
  executor.reset();  // runs the strand's last drain and joins before the strand goes away
  EXPECT_FALSE(overlapped);
}

}  // namespace
}  // namespace derma
