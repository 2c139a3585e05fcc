// Scenario parsing, validation and playback.
#include "sim/scenario.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "tests/sim/sim_test_util.h"

namespace derma::sim {
namespace {

using testing::At;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::T0;

bool KnownDevice(absl::string_view name) {
  return name == "devices/pen-1" || name == "devices/stim-1";
}

std::vector<double> Times(const std::vector<derma::sim::v1::ScenarioAction>& actions) {
  std::vector<double> times;
  for (const auto& a : actions) times.push_back(a.at_s());
  return times;
}

TEST(SimScenarioTest, ParsesTextFormatScenario) {
  absl::StatusOr<derma::sim::v1::Scenario> scenario = ParseScenarioText(R"pb(
    actions {
      at_s: 5
      inject_fault { name: "devices/stim-1" kind: FAULT_KIND_OVERCURRENT }
    }
    actions {
      at_s: 7
      set_link { name: "devices/pen-1" up: false }
    }
  )pb");
  ASSERT_TRUE(scenario.ok()) << scenario.status();
  ASSERT_EQ(scenario->actions_size(), 2);
  EXPECT_EQ(scenario->actions(0).inject_fault().kind(), derma::v1::FAULT_KIND_OVERCURRENT);
  EXPECT_TRUE(ValidateScenario(*scenario, KnownDevice).ok());
}

TEST(SimScenarioTest, ParseErrorCarriesLineAndColumn) {
  absl::StatusOr<derma::sim::v1::Scenario> scenario = ParseScenarioText(
      "actions { at_s: 1 set_link { name: \"devices/pen-1\" } }\n"
      "actions {\n"
      "  at_s: 2 inject_fault { name: \"devices/pen-1\" kind: FAULT_KIND_NOPE }\n"
      "}\n");
  ASSERT_FALSE(scenario.ok());
  EXPECT_EQ(scenario.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(scenario.status()), derma::v1::ERROR_REASON_SCENARIO_INVALID);
  EXPECT_THAT(scenario.status().message(), HasSubstr("line 3 column "));
  EXPECT_THAT(scenario.status().message(), HasSubstr("FAULT_KIND_NOPE"));
}

TEST(SimScenarioTest, ValidateListsEveryBadAction) {
  absl::StatusOr<derma::sim::v1::Scenario> scenario = ParseScenarioText(R"pb(
    actions {
      at_s: 1
      set_link { name: "devices/pen-1" up: true }
    }
    actions {
      at_s: -1
      set_link { name: "devices/pen-1" }
    }
    actions {
      at_s: 2
      inject_fault { name: "devices/ghost" kind: FAULT_KIND_MOTOR_STALL }
    }
    actions {
      at_s: 3
      clear_fault { name: "devices/pen-1" }
    }
    actions { at_s: 4 }
    actions {
      at_s: 5
      set_electrode_impedance { name: "devices/stim-1" impedance_ohm: 5 }
    }
  )pb");
  ASSERT_TRUE(scenario.ok()) << scenario.status();
  absl::Status status = ValidateScenario(*scenario, KnownDevice);
  EXPECT_EQ(ReasonOf(status), derma::v1::ERROR_REASON_SCENARIO_INVALID);
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("actions[1].at_s", "actions[2].inject_fault.name",
                                  "actions[3].clear_fault.kind", "actions[4].action",
                                  "actions[5].set_electrode_impedance.impedance_ohm"));
}

TEST(SimScenarioTest, NonFiniteTimeIsInvalid) {
  derma::sim::v1::Scenario scenario;
  auto* action = scenario.add_actions();
  action->set_at_s(std::numeric_limits<double>::infinity());
  action->mutable_set_link()->set_name("devices/pen-1");
  EXPECT_EQ(ViolationsOf(ValidateScenario(scenario, KnownDevice))[0].field, "actions[0].at_s");
}

TEST(SimScenarioTest, AnActionMoreThanAYearAheadIsInvalidAndAYearIsNot) {
  derma::sim::v1::Scenario scenario;
  auto* far = scenario.add_actions();
  far->set_at_s(1e300);
  far->mutable_set_link()->set_name("devices/pen-1");
  auto* nan = scenario.add_actions();
  nan->set_at_s(std::numeric_limits<double>::quiet_NaN());
  nan->mutable_set_link()->set_name("devices/pen-1");
  std::vector<FieldViolation> violations = ViolationsOf(ValidateScenario(scenario, KnownDevice));
  ASSERT_EQ(violations.size(), 2u);
  EXPECT_EQ(violations[0].field, "actions[0].at_s");
  EXPECT_THAT(violations[0].description, ::testing::HasSubstr("within 0–31536000 s"));
  EXPECT_EQ(violations[1].field, "actions[1].at_s");
  scenario.mutable_actions()->DeleteSubrange(1, 1);
  scenario.mutable_actions(0)->set_at_s(kMaxScenarioAtSeconds);
  EXPECT_TRUE(ValidateScenario(scenario, KnownDevice).ok());
}

TEST(SimScenarioPlayerTest, ReturnsEachActionOnceInTimeOrder) {
  absl::StatusOr<derma::sim::v1::Scenario> scenario = ParseScenarioText(R"pb(
    actions {
      at_s: 3
      set_link { name: "devices/pen-1" up: true }
    }
    actions {
      at_s: 1
      set_link { name: "devices/pen-1" up: false }
    }
    actions {
      at_s: 2
      inject_fault { name: "devices/stim-1" kind: FAULT_KIND_OVERCURRENT }
    }
    actions {
      at_s: 2
      clear_fault { name: "devices/stim-1" kind: FAULT_KIND_OVERCURRENT }
    }
  )pb");
  ASSERT_TRUE(scenario.ok());
  ScenarioPlayer player(*scenario, At(10));
  EXPECT_TRUE(player.TakeDue(At(10.5)).empty());
  EXPECT_EQ(player.NextDue(), At(11));
  EXPECT_THAT(Times(player.TakeDue(At(11))), ElementsAre(1));
  std::vector<derma::sim::v1::ScenarioAction> two = player.TakeDue(At(12.5));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_TRUE(two[0].has_inject_fault());  // ties keep file order
  EXPECT_TRUE(two[1].has_clear_fault());
  EXPECT_TRUE(player.TakeDue(At(12.5)).empty());
  EXPECT_EQ(player.pending(), 1u);
  EXPECT_FALSE(player.done());
  EXPECT_THAT(Times(player.TakeDue(At(100))), ElementsAre(3));
  EXPECT_TRUE(player.done());
  EXPECT_TRUE(player.TakeDue(At(200)).empty());
  EXPECT_EQ(player.NextDue(), absl::InfiniteFuture());
}

}  // namespace
}  // namespace derma::sim
