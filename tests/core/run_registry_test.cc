// RunRegistry: lookup, listing order and filtering, watchers until the run ends, bounded
// retention of ended runs; and watching a real run of a Device.
#include "plugin/core/run_registry.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;

RunPtr MakeRun(const std::string& device, const std::string& id, v1::RunState state) {
  auto run = std::make_shared<v1::Run>();
  run->set_name(device + "/runs/" + id);
  run->set_device(device);
  run->set_state(state);
  return run;
}

std::vector<std::string> Names(const std::vector<RunPtr>& runs) {
  std::vector<std::string> out;
  for (const RunPtr& run : runs) out.push_back(run->name());
  return out;
}

TEST(RunRegistryTest, GetReturnsLatestSnapshotOrNull) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_RUNNING));
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_PAUSED));
  ASSERT_NE(registry.Get("devices/a/runs/1"), nullptr);
  EXPECT_EQ(registry.Get("devices/a/runs/1")->state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(registry.Get("devices/a/runs/2"), nullptr);
}

TEST(RunRegistryTest, ListIsNewestFirst) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/b", "2", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/a", "3", v1::RUN_STATE_RUNNING));
  EXPECT_THAT(Names(registry.List("", 0, 10)),
              ElementsAre("devices/a/runs/3", "devices/b/runs/2", "devices/a/runs/1"));
}

TEST(RunRegistryTest, ListFiltersByDevice) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/b", "2", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/a", "3", v1::RUN_STATE_RUNNING));
  EXPECT_THAT(Names(registry.List("devices/a", 0, 10)),
              ElementsAre("devices/a/runs/3", "devices/a/runs/1"));
}

TEST(RunRegistryTest, ListPagesWithOffsetAndLimit) {
  RunRegistry registry;
  for (int i = 1; i <= 5; ++i) {
    registry.Publish(MakeRun("devices/a", std::to_string(i), v1::RUN_STATE_SUCCEEDED));
  }
  EXPECT_THAT(Names(registry.List("devices/a", 1, 2)),
              ElementsAre("devices/a/runs/4", "devices/a/runs/3"));
}

TEST(RunRegistryTest, WatcherGetsUpdatesUntilRunEnds) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_RUNNING));
  std::vector<v1::RunState> seen;
  const uint64_t id =
      registry.Watch("devices/a/runs/1", [&](const RunPtr& run) { seen.push_back(run->state()); });
  ASSERT_NE(id, 0u);
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_PAUSED));
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_ENDED_EARLY));
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_ENDED_EARLY));
  EXPECT_THAT(seen, ElementsAre(v1::RUN_STATE_PAUSED, v1::RUN_STATE_ENDED_EARLY));
}

TEST(RunRegistryTest, WatcherIgnoresOtherRuns) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_RUNNING));
  int calls = 0;
  registry.Watch("devices/a/runs/1", [&](const RunPtr&) { ++calls; });
  registry.Publish(MakeRun("devices/a", "2", v1::RUN_STATE_RUNNING));
  EXPECT_EQ(calls, 0);
}

TEST(RunRegistryTest, WatchOfEndedOrUnknownRunReturnsZero) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_SUCCEEDED));
  EXPECT_EQ(registry.Watch("devices/a/runs/1", [](const RunPtr&) {}), 0u);
  EXPECT_EQ(registry.Watch("devices/a/runs/9", [](const RunPtr&) {}), 0u);
}

TEST(RunRegistryTest, UnwatchStopsUpdates) {
  RunRegistry registry;
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_RUNNING));
  int calls = 0;
  const uint64_t id = registry.Watch("devices/a/runs/1", [&](const RunPtr&) { ++calls; });
  registry.Unwatch(id);
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_PAUSED));
  EXPECT_EQ(calls, 0);
}

TEST(RunRegistryTest, ForgetsOldestEndedRunsBeyondBound) {
  RunRegistry registry(/*max_ended_runs=*/2);
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/a", "2", v1::RUN_STATE_ENDED_EARLY));
  registry.Publish(MakeRun("devices/a", "3", v1::RUN_STATE_SUCCEEDED));
  EXPECT_EQ(registry.Get("devices/a/runs/1"), nullptr);
  EXPECT_THAT(Names(registry.List("", 0, 10)), ElementsAre("devices/a/runs/3", "devices/a/runs/2"));
}

TEST(RunRegistryTest, NeverForgetsActiveRuns) {
  RunRegistry registry(/*max_ended_runs=*/1);
  registry.Publish(MakeRun("devices/a", "active", v1::RUN_STATE_RUNNING));
  registry.Publish(MakeRun("devices/b", "1", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/b", "2", v1::RUN_STATE_SUCCEEDED));
  EXPECT_NE(registry.Get("devices/a/runs/active"), nullptr);
  EXPECT_EQ(registry.Get("devices/b/runs/1"), nullptr);
  EXPECT_NE(registry.Get("devices/b/runs/2"), nullptr);
}

TEST(RunRegistryTest, EndingAnActiveRunCountsTowardsTheBound) {
  RunRegistry registry(/*max_ended_runs=*/1);
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_RUNNING));
  registry.Publish(MakeRun("devices/a", "2", v1::RUN_STATE_SUCCEEDED));
  registry.Publish(MakeRun("devices/a", "1", v1::RUN_STATE_SUCCEEDED));
  EXPECT_EQ(registry.List("", 0, 10).size(), 1u);
}

class DeviceRunWatchTest : public DeviceFixture {};

TEST_F(DeviceRunWatchTest, WatcherFollowsADeviceRunToItsEnd) {
  MakeDevice();
  v1::RunStep step;
  step.set_duration_s(1);
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(), {step}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  std::vector<RunPtr> seen;
  ASSERT_NE(runs_.Watch((*run)->name(), [&](const RunPtr& r) { seen.push_back(r); }), 0u);
  Run(absl::Seconds(2));
  ASSERT_GE(seen.size(), 2u) << "progress updates and the end";
  EXPECT_EQ(seen.back()->state(), v1::RUN_STATE_SUCCEEDED);
  for (size_t i = 0; i + 1 < seen.size(); ++i) EXPECT_FALSE(RunEnded(*seen[i]));
  EXPECT_GT(seen[seen.size() - 2]->ledger().output_on_s(), 0.5);
}

}  // namespace
}  // namespace derma::testing
