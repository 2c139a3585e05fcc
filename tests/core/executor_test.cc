// Executors, strands and clocks. The strand's no-concurrency guarantee is checked on a real
// ThreadPoolExecutor (waiting with absl synchronization, never sleeping); everything ordering-
// related runs on a ManualExecutor so it is deterministic.
#include "plugin/core/executor.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/core/clock.h"

namespace derma {
namespace {

using ::testing::ElementsAre;

TEST(ManualExecutorTest, RunsNothingUntilAsked) {
  ManualExecutor executor;
  bool ran = false;
  executor.Schedule([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_EQ(executor.RunUntilIdle(), 1u);
  EXPECT_TRUE(ran);
}

TEST(ManualExecutorTest, RunsTasksInOrderIncludingOnesTheySchedule) {
  ManualExecutor executor;
  std::vector<int> order;
  executor.Schedule([&] {
    order.push_back(1);
    executor.Schedule([&] { order.push_back(3); });
  });
  executor.Schedule([&] { order.push_back(2); });
  EXPECT_EQ(executor.RunUntilIdle(), 3u);
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
}

TEST(StrandTest, RunsPostedTasksInOrder) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<int> order;
  for (int i = 0; i < 200; ++i) strand.Post([&order, i] { order.push_back(i); });
  executor.RunUntilIdle();
  ASSERT_EQ(order.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(order[i], i);
}

TEST(StrandTest, UrgentTaskRunsBeforeQueuedNormalTasks) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> order;
  strand.Post([&] { order.push_back("n1"); });
  strand.Post([&] { order.push_back("n2"); });
  strand.Post([&] { order.push_back("n3"); });
  strand.PostUrgent([&] { order.push_back("urgent"); });
  executor.RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("urgent", "n1", "n2", "n3"));
}

TEST(StrandTest, UrgentTasksKeepTheirOwnOrder) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> order;
  strand.Post([&] { order.push_back("n1"); });
  strand.PostUrgent([&] { order.push_back("u1"); });
  strand.PostUrgent([&] { order.push_back("u2"); });
  executor.RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("u1", "u2", "n1"));
}

TEST(StrandTest, UrgentTaskPostedMidDrainRunsNext) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> order;
  strand.Post([&] {
    order.push_back("n1");
    strand.PostUrgent([&] { order.push_back("urgent"); });
  });
  strand.Post([&] { order.push_back("n2"); });
  strand.Post([&] { order.push_back("n3"); });
  executor.RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("n1", "urgent", "n2", "n3"));
}

TEST(StrandTest, BusyStrandYieldsToOtherStrands) {
  ManualExecutor executor;
  Strand busy(executor);
  Strand other(executor);
  std::vector<std::string> order;
  for (int i = 0; i < 1000; ++i) busy.Post([&] { order.push_back("busy"); });
  other.Post([&] { order.push_back("other"); });
  executor.RunUntilIdle();
  const auto other_at = std::find(order.begin(), order.end(), "other") - order.begin();
  EXPECT_LT(other_at, 1000) << "a strand must not run its whole backlog in one go";
}

TEST(StrandTest, NeverRunsTwoTasksConcurrentlyOnAThreadPool) {
  auto executor = std::make_unique<ThreadPoolExecutor>(2);
  Strand strand(*executor);
  constexpr int kTasks = 20000;
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<int> done{0};
  absl::Notification all_done;
  for (int i = 0; i < kTasks; ++i) {
    strand.Post([&] {
      const int now = in_flight.fetch_add(1) + 1;
      int seen = max_in_flight.load();
      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
      }
      volatile int spin = 0;
      for (int k = 0; k < 200; ++k) spin = spin + k;
      in_flight.fetch_sub(1);
      if (done.fetch_add(1) + 1 == kTasks) all_done.Notify();
    });
  }
  all_done.WaitForNotification();
  executor.reset();  // runs the strand's last drain and joins before the strand goes away
  EXPECT_EQ(max_in_flight.load(), 1);
}

TEST(StrandTest, TwoStrandsRunInParallelOnAThreadPool) {
  auto executor = std::make_unique<ThreadPoolExecutor>(2);
  Strand a(*executor);
  Strand b(*executor);
  absl::Notification a_started, b_started;
  std::atomic<bool> a_saw_b{false}, b_saw_a{false};
  absl::BlockingCounter finished(2);
  // Each task waits for the other strand's task to start: only possible if both run at once.
  a.Post([&] {
    a_started.Notify();
    a_saw_b = b_started.WaitForNotificationWithTimeout(absl::Seconds(10));
    finished.DecrementCount();
  });
  b.Post([&] {
    b_started.Notify();
    b_saw_a = a_started.WaitForNotificationWithTimeout(absl::Seconds(10));
    finished.DecrementCount();
  });
  finished.Wait();
  executor.reset();  // runs the strands' last drains and joins before the strands go away
  EXPECT_TRUE(a_saw_b && b_saw_a);
}

TEST(StrandTest, UrgentTaskRunsAheadOfOtherStrandsBacklog) {
  ManualExecutor executor;
  std::vector<std::unique_ptr<Strand>> busy;
  std::vector<std::string> log;
  for (int i = 0; i < 50; ++i) {
    busy.push_back(std::make_unique<Strand>(executor));
    busy.back()->Post([&log] { log.push_back("tick"); });
  }
  Strand stopped(executor);
  stopped.Post([&log] { log.push_back("normal"); });  // queued behind the 50 ticks
  stopped.PostUrgent([&log] { log.push_back("estop"); });
  executor.RunUntilIdle();
  ASSERT_EQ(log.size(), 52u);
  EXPECT_EQ(log[0], "estop") << "the emergency stop waited behind other strands' ticks";
  EXPECT_EQ(log[1], "normal") << "the urgent drain runs the strand's queued work too";
  EXPECT_EQ(std::count(log.begin(), log.end(), "normal"), 1) << "no task runs twice";
}

TEST(StrandTest, UrgentAndNormalDrainsNeverRunTheStrandConcurrently) {
  auto executor = std::make_unique<ThreadPoolExecutor>(4);
  Strand strand(*executor);
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  absl::BlockingCounter done(400);
  for (int i = 0; i < 200; ++i) {
    for (bool urgent : {false, true}) {
      auto task = [&] {
        if (inside.fetch_add(1) != 0) overlapped = true;
        inside.fetch_sub(1);
        done.DecrementCount();
      };
      urgent ? strand.PostUrgent(task) : strand.Post(task);
    }
  }
  done.Wait();
  executor.reset();  // runs the strand's last drains and joins before the strand goes away
  EXPECT_FALSE(overlapped);
}

// Why a strand must outlive every task its executor still holds, not only the tasks posted to
// it: an urgent post schedules a second drain, which runs after the strand's last task.
TEST(StrandTest, ADrainCanRunAfterTheStrandsLastTask) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("normal"); });
  strand.PostUrgent([&log] { log.push_back("urgent"); });
  EXPECT_EQ(executor.RunUntilIdle(), 2u) << "the urgent drain runs both tasks, then the normal "
                                            "drain runs and finds nothing left";
  EXPECT_THAT(log, ::testing::ElementsAre("urgent", "normal"));
}

TEST(StrandDispatchTest, RunsOnTheCallingThreadWhenTheStrandIsIdle) {
  ManualExecutor executor;
  Strand strand(executor);
  bool ran = false;
  strand.Dispatch([&ran] { ran = true; });
  EXPECT_TRUE(ran) << "an idle strand runs a dispatched task before Dispatch returns";
  EXPECT_EQ(executor.RunUntilIdle(), 0u) << "nothing was left on the executor";
}

TEST(StrandDispatchTest, QueuesBehindWorkAlreadyPosted) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("posted"); });
  strand.Dispatch([&log] { log.push_back("dispatched"); });
  EXPECT_TRUE(log.empty()) << "a strand with queued work must not run a dispatched task first";
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("posted", "dispatched"));
}

TEST(StrandDispatchTest, WorkPostedWhileRunningInlineRunsAfterItOnTheExecutor) {
  ManualExecutor executor;
  Strand strand(executor);
  std::vector<std::string> log;
  strand.Dispatch([&] {
    log.push_back("inline");
    strand.Post([&log] { log.push_back("normal"); });
    strand.PostUrgent([&log] { log.push_back("urgent"); });
    strand.Dispatch([&log] { log.push_back("nested dispatch"); });
    EXPECT_EQ(log.size(), 1u) << "nothing else runs on the strand while a task runs inline";
  });
  EXPECT_THAT(log, ElementsAre("inline"));
  executor.RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("inline", "urgent", "normal", "nested dispatch"));
}

// A drain of the strand still queued on the executor (its tasks already run by another drain)
// while a task is dispatched inline: the inline run takes the strand, the drain finds nothing.
TEST(StrandDispatchTest, AnInlineRunAndALeftoverDrainDoNotRunATaskTwice) {
  ManualExecutor executor;
  Strand strand(executor);
  Strand other(executor);
  std::vector<std::string> log;
  strand.Post([&log] { log.push_back("normal"); });  // queues the strand's normal drain
  other.PostUrgent([&] { strand.Dispatch([&log] { log.push_back("dispatched"); }); });
  strand.PostUrgent([&log] { log.push_back("urgent"); });  // its drain runs both tasks first
  EXPECT_EQ(executor.RunUntilIdle(), 3u);
  EXPECT_THAT(log, ElementsAre("urgent", "normal", "dispatched"));
}

TEST(StrandDispatchTest, DispatchAndPostFromManyThreadsNeverOverlapAndAllRun) {
  auto executor = std::make_unique<ThreadPoolExecutor>(2);
  Strand strand(*executor);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  absl::BlockingCounter done(kThreads * kPerThread);
  std::vector<std::vector<int>> order(kThreads);  // each caller's tasks, in the order they ran
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Task task = [&, t, i] {
          if (inside.fetch_add(1) != 0) overlapped = true;
          order[t].push_back(i);  // strand-confined: no lock needed if tasks never overlap
          inside.fetch_sub(1);
          done.DecrementCount();
        };
        if (i % 3 == 0) {
          strand.Post(std::move(task));
        } else {
          strand.Dispatch(std::move(task));
        }
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  done.Wait();
  executor.reset();  // runs the strand's last drain and joins before the strand goes away
  EXPECT_FALSE(overlapped);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(order[t].size(), static_cast<size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(order[t].begin(), order[t].end()))
        << "one caller's tasks ran out of order";
  }
}

TEST(StrandTest, DeferredPostsRunOnceTheirDrainsAreScheduledAsOneBatch) {
  ManualExecutor executor;
  std::vector<std::unique_ptr<Strand>> strands;
  for (int i = 0; i < 3; ++i) strands.push_back(std::make_unique<Strand>(executor));
  std::vector<std::string> log;
  executor.Schedule([&log] { log.push_back("queued before"); });
  std::vector<Task> drains;
  for (int i = 0; i < 3; ++i) {
    strands[i]->PostDeferred([&log, i] { log.push_back(absl::StrCat("urgent ", i)); },
                             /*urgent=*/true, drains);
  }
  strands[0]->PostDeferred([&log] { log.push_back("urgent 0 again"); }, true, drains);
  EXPECT_EQ(drains.size(), 3u) << "one drain per strand, however many tasks it got";
  EXPECT_EQ(executor.RunUntilIdle(), 1u) << "nothing of the strands runs before its drain is "
                                            "scheduled";
  executor.ScheduleAll(std::move(drains), /*urgent=*/true);
  executor.RunUntilIdle();
  EXPECT_THAT(log,
              ElementsAre("queued before", "urgent 0", "urgent 0 again", "urgent 1", "urgent 2"));
}

TEST(ThreadPoolExecutorTest, ScheduleAllRunsEveryTaskOfTheBatch) {
  std::atomic<int> ran{0};
  {
    ThreadPoolExecutor executor(2);
    for (bool urgent : {false, true}) {
      std::vector<Task> batch;
      for (int i = 0; i < 500; ++i) batch.push_back([&] { ran.fetch_add(1); });
      executor.ScheduleAll(std::move(batch), urgent);
    }
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolExecutorTest, DestructorRunsEveryQueuedTask) {
  std::atomic<int> ran{0};
  {
    ThreadPoolExecutor executor(2);
    EXPECT_EQ(executor.thread_count(), 2u);
    for (int i = 0; i < 1000; ++i) executor.Schedule([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(VirtualClockTest, StartsAtDefaultEpochAndMovesOnlyWhenAdvanced) {
  VirtualClock clock;
  EXPECT_TRUE(clock.IsVirtual());
  EXPECT_EQ(clock.Now(), absl::FromCivil(absl::CivilSecond(2026, 1, 1), absl::UTCTimeZone()));
  const absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  EXPECT_EQ(clock.Advance(absl::Milliseconds(1500)), t0 + absl::Milliseconds(1500));
  EXPECT_EQ(clock.Now(), t0 + absl::Milliseconds(1500));
}

TEST(VirtualClockTest, NegativeAdvanceDoesNotGoBackwards) {
  VirtualClock clock;
  const absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Advance(-absl::Seconds(1)), t0);
}

TEST(RealClockTest, SpeedFactorScalesElapsedTime) {
  const absl::Time before = absl::Now();
  RealClock clock(1000);
  EXPECT_FALSE(clock.IsVirtual());
  const absl::Time constructed = absl::Now();
  while (absl::Now() - constructed < absl::Milliseconds(2)) {
  }  // let 2 ms of wall time pass (busy wait, not a sleep)
  const absl::Duration scaled = clock.Now() - before;
  EXPECT_GE(scaled, absl::Seconds(1)) << "2 ms of wall time at 1000x is at least 2 s";
}

TEST(RealClockTest, NonPositiveSpeedFactorMeansRealTime) {
  EXPECT_EQ(RealClock(0).speed_factor(), 1.0);
  EXPECT_EQ(RealClock(-3).speed_factor(), 1.0);
  RealClock clock;
  const absl::Time now = absl::Now();
  EXPECT_LT(absl::AbsDuration(clock.Now() - now), absl::Seconds(1));
}

}  // namespace
}  // namespace derma
