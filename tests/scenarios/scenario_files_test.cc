// The shipped scenario files themselves: each loads through the Simulator, names only devices
// of the shipped virtual fleet (so `load_scenario` works against `dermad --config
// deploy/fleet-virtual.textproto` too), and is described in sim/scenarios/README.md.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "plugin/host/config_loader.h"
#include "sim/scenario.h"
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

using ScenarioFilesTest = ScenarioFixture;

TEST_F(ScenarioFilesTest, EveryShippedScenarioLoadsThroughTheSimulator) {
  ASSERT_THAT(ScenarioFiles(), SizeIs(5));
  for (const std::string& file : ScenarioFiles()) {
    EXPECT_GT(LoadScenarioFile(file), 0u) << file;
  }
}

TEST(ScenarioFilesFleetTest, EveryShippedScenarioNamesOnlyDevicesOfTheShippedVirtualFleet) {
  absl::StatusOr<config::v1::FleetConfig> fleet =
      host::LoadFleetConfig(absl::StrCat(DERMA_SOURCE_DIR, "/deploy/fleet-virtual.textproto"));
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  std::vector<std::string> names;
  for (const config::v1::DeviceConfig& device : host::ExpandFleet(*fleet)) {
    names.push_back("devices/" + device.id());
  }
  for (const std::string& file : ScenarioFiles()) {
    absl::StatusOr<sim::v1::Scenario> scenario =
        sim::ParseScenarioText(ReadFile(ScenarioPath(file)));
    ASSERT_TRUE(scenario.ok()) << file << ": " << scenario.status();
    const absl::Status valid = sim::ValidateScenario(*scenario, [&](absl::string_view name) {
      return std::find(names.begin(), names.end(), name) != names.end();
    });
    EXPECT_TRUE(valid.ok()) << file << ": " << valid;
  }
}

TEST(ScenarioFilesReadmeTest, EveryShippedScenarioIsDescribedInTheReadme) {
  const std::string readme = ReadFile(ScenarioPath("README.md"));
  for (const std::string& file : ScenarioFiles()) {
    EXPECT_THAT(readme, HasSubstr("`" + file + "`"));
  }
}

}  // namespace
}  // namespace derma::testing
