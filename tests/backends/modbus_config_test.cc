// The Modbus parts of a fleet config (ValidateModbusFleet, through ValidateFleetConfig as dermad
// runs it): every problem reported at once, each naming its field; and the unit ids a group
// takes (ExpandFleet).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "plugin/host/config_loader.h"

namespace derma {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr char kValid[] = R"pb(
  clock { mode: CLOCK_MODE_REAL }
  modbus_links { name: "bus" rtu { device: "/dev/ttyUSB0" baud: 115200 } }
  modbus_links { name: "tcp" tcp { host: "10.0.0.5" } }
  devices { id: "pen-1" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
            modbus { link: "bus" unit_id: 1 } }
  groups { id_prefix: "stim-" count: 3 device { kind: DEVICE_KIND_MICROCURRENT
           backend: BACKEND_MODBUS modbus { link: "bus" unit_id: 2 } } }
)pb";

config::v1::FleetConfig Parse(const std::string& text) {
  config::v1::FleetConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) fields.push_back(v.field);
  return fields;
}

TEST(ModbusConfigTest, AValidModbusFleetPasses) {
  EXPECT_TRUE(host::ValidateFleetConfig(Parse(kValid)).ok());
}

TEST(ModbusConfigTest, AGroupTakesConsecutiveUnitIds) {
  std::vector<uint32_t> units;
  for (const auto& device : host::ExpandFleet(Parse(kValid))) {
    units.push_back(device.modbus().unit_id());
  }
  EXPECT_EQ(units, (std::vector<uint32_t>{1, 2, 3, 4}));
}

TEST(ModbusConfigTest, EveryProblemIsReportedOnceNamingItsField) {
  config::v1::FleetConfig config = Parse(R"pb(
    clock { mode: CLOCK_MODE_VIRTUAL speed_factor: 2 }
    modbus_links { name: "bus" rtu { device: "" baud: 1000 stop_bits: 3 } retries: 11 }
    modbus_links { name: "bus" tcp { host: "h" port: 70000 } response_timeout_s: 20 }
    modbus_links { name: "Bad Name" }
    modbus_links { name: "slow" tcp { host: "h" } response_timeout_s: 1 watchdog_s: 2 }
    modbus_links { name: "wd" tcp { host: "h" } watchdog_s: 0.1005 }
    devices { id: "a" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS }
    devices { id: "b" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
              modbus { link: "nowhere" unit_id: 248 } }
    devices { id: "c" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
              modbus { link: "slow" unit_id: 5 } pen { cartridge_needle_count: 3 } }
    devices { id: "d" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
              modbus { link: "slow" unit_id: 5 } }
    devices { id: "e" kind: DEVICE_KIND_MICRONEEDLING modbus { link: "slow" unit_id: 6 } }
    groups { id_prefix: "g-" count: 10 device { kind: DEVICE_KIND_MICROCURRENT
             backend: BACKEND_MODBUS modbus { link: "slow" unit_id: 240 } } }
  )pb");
  absl::Status status = host::ValidateFleetConfig(config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(status), UnorderedElementsAreArray(std::vector<std::string>{
                                  "modbus_links[0].rtu.device",
                                  "modbus_links[0].rtu.baud",
                                  "modbus_links[0].rtu.stop_bits",
                                  "modbus_links[0].retries",
                                  "modbus_links[0].watchdog_s",  // 1 s ≤ 0.01 + 0.1 × 12
                                  "modbus_links[1].name",
                                  "modbus_links[1].tcp.port",
                                  "modbus_links[1].response_timeout_s",
                                  "modbus_links[1].watchdog_s",  // 1 s ≤ 0.01 + 20 × 3
                                  "modbus_links[2].name",
                                  "modbus_links[2].transport",
                                  "modbus_links[3].watchdog_s",
                                  "modbus_links[4].watchdog_s",
                                  "devices[0].modbus",
                                  "devices[1].modbus.link",
                                  "devices[1].modbus.unit_id",
                                  "devices[2].pen",
                                  "devices[3].modbus.unit_id",
                                  "devices[4].modbus",
                                  "groups[0].device.modbus.unit_id",
                                  "clock.mode",
                                  "clock.speed_factor",
                              }));
}

TEST(ModbusConfigTest, ASimulatedFleetNeedsNoModbusSettings) {
  EXPECT_THAT(Fields(host::ValidateFleetConfig(Parse(R"pb(
                clock { mode: CLOCK_MODE_VIRTUAL }
                devices { id: "p" kind: DEVICE_KIND_MICRONEEDLING }
              )pb"))),
              IsEmpty());
}

}  // namespace
}  // namespace derma
