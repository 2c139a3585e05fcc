// Tests for plugin/host/config_loader: loading text and JSON fleet files, whole-config
// validation and group expansion.
#include "plugin/host/config_loader.h"

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"

namespace derma::host {
namespace {

using ::derma::config::v1::FleetConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string WriteTemp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

FleetConfig Parse(const std::string& text) {
  FleetConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::vector<std::string> ViolatedFields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) fields.push_back(v.field);
  return fields;
}

std::vector<std::string> Ids(const std::vector<config::v1::DeviceConfig>& devices) {
  std::vector<std::string> ids;
  for (const auto& d : devices) ids.push_back(d.id());
  return ids;
}

class ShippedConfigTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShippedConfigTest, LoadsAndValidates) {
  absl::StatusOr<FleetConfig> config =
      LoadFleetConfig(std::string(DERMA_SOURCE_DIR) + "/deploy/" + GetParam());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ValidateFleetConfig(*config).ok()) << ValidateFleetConfig(*config);
}

INSTANTIATE_TEST_SUITE_P(Deploy, ShippedConfigTest,
                         ::testing::Values("fleet.textproto", "fleet-virtual.textproto",
                                           "fleet-1000.textproto"));

TEST(ShippedConfig, DefaultFleetHasTwoPensAndTwoStimulators) {
  auto config = LoadFleetConfig(std::string(DERMA_SOURCE_DIR) + "/deploy/fleet.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(Ids(ExpandFleet(*config)), ElementsAre("pen-1", "pen-2", "stim-1", "stim-2"));
  EXPECT_EQ(config->clock().mode(), config::v1::CLOCK_MODE_REAL);
  EXPECT_EQ(config->sim_seed(), 42u);
}

TEST(ShippedConfig, LoadTestFleetExpandsToOneThousandDevices) {
  auto config = LoadFleetConfig(std::string(DERMA_SOURCE_DIR) + "/deploy/fleet-1000.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto devices = ExpandFleet(*config);
  ASSERT_EQ(devices.size(), 1000u);
  EXPECT_EQ(devices[499].id(), "pen-500");
  EXPECT_EQ(devices[500].id(), "stim-1");
}

TEST(LoadFleetConfig, TextSyntaxErrorNamesFileLineColumnAndField) {
  const std::string path = WriteTemp("typo.textproto",
                                     "sim_seed: 1\n"
                                     "devices {\n"
                                     "  id: \"pen-1\"\n"
                                     "  depht: 2\n"
                                     "}\n");
  absl::StatusOr<FleetConfig> config = LoadFleetConfig(path);
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(),
              HasSubstr(path + ":4:3: Message type \"derma.config.v1.DeviceConfig\" has no "
                               "field named \"depht\""));
  EXPECT_EQ(ReasonOf(config.status()), v1::ERROR_REASON_INVALID_FIELD);
}

TEST(LoadFleetConfig, JsonConfigLoads) {
  const std::string path = WriteTemp("fleet.json", R"(  {
    "clock": {"mode": "CLOCK_MODE_VIRTUAL"},
    "simSeed": "7",
    "devices": [{"id": "pen-1", "kind": "DEVICE_KIND_MICRONEEDLING", "model": "DP-100"}]
  })");
  absl::StatusOr<FleetConfig> config = LoadFleetConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->clock().mode(), config::v1::CLOCK_MODE_VIRTUAL);
  EXPECT_EQ(config->sim_seed(), 7u);
  ASSERT_EQ(config->devices_size(), 1);
  EXPECT_EQ(config->devices(0).model(), "DP-100");
}

TEST(LoadFleetConfig, JsonErrorNamesFile) {
  const std::string path = WriteTemp("bad.json", R"({"devices": [{"depht": 2}]})");
  absl::StatusOr<FleetConfig> config = LoadFleetConfig(path);
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_THAT(config.status().message(), HasSubstr("depht"));
}

TEST(LoadFleetConfig, MissingFileIsNotFoundAndNamesPath) {
  const std::string path = ::testing::TempDir() + "/no-such-fleet.textproto";
  absl::StatusOr<FleetConfig> config = LoadFleetConfig(path);
  ASSERT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_EQ(ReasonOf(config.status()), v1::ERROR_REASON_INVALID_FIELD);
  EXPECT_EQ(MetadataOf(config.status())["file"], path);
}

TEST(ValidateFleetConfig, MinimalFleetIsValid) {
  EXPECT_TRUE(
      ValidateFleetConfig(Parse(R"pb(devices { id: "a" kind: DEVICE_KIND_MICROCURRENT })pb")).ok());
}

TEST(ValidateFleetConfig, EmptyFleetIsRejected) {
  EXPECT_THAT(ViolatedFields(ValidateFleetConfig(FleetConfig())), ElementsAre("devices"));
}

TEST(ValidateFleetConfig, ListsEveryProblem) {
  const absl::Status status = ValidateFleetConfig(Parse(R"pb(
    clock { speed_factor: 5000 }
    sample_rate_hz: 0.5
    executor_threads: 1000
    devices { id: "pen-1" kind: DEVICE_KIND_MICRONEEDLING }
    devices { id: "Bad_Id" kind: DEVICE_KIND_MICRONEEDLING }
    devices { id: "stim-1" }
    devices {
      id: "stim-2"
      kind: DEVICE_KIND_MICRONEEDLING
      stimulator {}
    }
    groups {
      id_prefix: "p-"
      count: 0
      device { kind: DEVICE_KIND_MICRONEEDLING }
    }
    groups {
      id_prefix: "-x"
      count: 2
      device { kind: DEVICE_KIND_MICROCURRENT }
    }
  )pb"));
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_INVALID_FIELD);
  EXPECT_THAT(ViolatedFields(status),
              UnorderedElementsAre("clock.speed_factor", "sample_rate_hz", "executor_threads",
                                   "devices[1].id", "devices[2].kind", "devices[3].stimulator",
                                   "groups[0].count", "groups[1].id_prefix"));
  EXPECT_THAT(status.message(), HasSubstr("8 problems"));
  EXPECT_THAT(status.message(), HasSubstr("clock.speed_factor"));
  EXPECT_THAT(status.message(), HasSubstr("and 5 more"));
}

TEST(ValidateFleetConfig, ListsSimulatedModelAndOverrideProblemsWithTheRest) {
  const absl::Status status = ValidateFleetConfig(Parse(R"pb(
    sample_rate_hz: 0.5
    devices { id: "Bad_Id" kind: DEVICE_KIND_MICRONEEDLING }
    devices { id: "pen-1" kind: DEVICE_KIND_MICRONEEDLING model: "NO-SUCH-PEN" }
    devices {
      id: "stim-1"
      kind: DEVICE_KIND_MICROCURRENT
      overrides { field: "no_such_parameter" max: 1 }
    }
    groups {
      id_prefix: "g-"
      count: 2
      device { kind: DEVICE_KIND_MICROCURRENT model: "NO-SUCH-STIM" }
    }
  )pb"));
  EXPECT_THAT(ViolatedFields(status),
              UnorderedElementsAre("sample_rate_hz", "devices[0].id", "devices[pen-1].model",
                                   "devices[stim-1].overrides[0].field", "devices[g-1].model"));
  EXPECT_THAT(status.message(), HasSubstr("5 problems"));
}

TEST(ValidateFleetConfig, RejectsDuplicateIdsAcrossDevicesAndGroups) {
  const absl::Status status = ValidateFleetConfig(Parse(R"pb(
    devices { id: "pen-2" kind: DEVICE_KIND_MICRONEEDLING }
    devices { id: "stim-1" kind: DEVICE_KIND_MICROCURRENT }
    devices { id: "stim-1" kind: DEVICE_KIND_MICROCURRENT }
    groups {
      id_prefix: "pen-"
      count: 3
      device { kind: DEVICE_KIND_MICRONEEDLING }
    }
    groups {
      id_prefix: "pen-"
      count: 1
      device { kind: DEVICE_KIND_MICRONEEDLING }
    }
  )pb"));
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(status),
              ElementsAre("devices[2].id", "groups[0].id_prefix", "groups[1].id_prefix"));
  EXPECT_THAT(status.message(), HasSubstr("\"pen-2\" (also devices[0])"));
  EXPECT_THAT(status.message(), HasSubstr("\"pen-1\" (also groups[0])"));
}

TEST(ValidateFleetConfig, RejectsIdsTooLongOnceNumbered) {
  const std::string prefix(62, 'a');
  FleetConfig config;
  auto* group = config.add_groups();
  group->set_id_prefix(prefix);
  group->set_count(10);  // "a…a10" is 64 characters
  group->mutable_device()->set_kind(v1::DEVICE_KIND_MICROCURRENT);
  EXPECT_THAT(ViolatedFields(ValidateFleetConfig(config)), ElementsAre("groups[0].id_prefix"));
}

TEST(ExpandFleet, DevicesFirstThenGroupsInOrder) {
  const auto devices = ExpandFleet(Parse(R"pb(
    devices { id: "solo" kind: DEVICE_KIND_MICROCURRENT }
    groups {
      id_prefix: "pen-"
      count: 2
      device { id: "ignored" kind: DEVICE_KIND_MICRONEEDLING model: "DP-300" }
    }
    groups {
      id_prefix: "stim-"
      count: 1
      device { kind: DEVICE_KIND_MICROCURRENT }
    }
  )pb"));
  EXPECT_THAT(Ids(devices), ElementsAre("solo", "pen-1", "pen-2", "stim-1"));
  EXPECT_EQ(devices[2].model(), "DP-300");
  EXPECT_EQ(devices[2].kind(), v1::DEVICE_KIND_MICRONEEDLING);
  EXPECT_EQ(devices[3].kind(), v1::DEVICE_KIND_MICROCURRENT);
}

TEST(EffectiveDefaults, ZeroMeansDefault) {
  FleetConfig config;
  EXPECT_EQ(EffectiveSampleRateHz(config), 100.0);
  EXPECT_EQ(EffectiveSpeedFactor(config), 1.0);
  config.set_sample_rate_hz(250);
  config.mutable_clock()->set_speed_factor(10);
  EXPECT_EQ(EffectiveSampleRateHz(config), 250.0);
  EXPECT_EQ(EffectiveSpeedFactor(config), 10.0);
}

}  // namespace
}  // namespace derma::host
