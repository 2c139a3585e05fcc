// What each command costs on the wire (plugin/driver.h): a Device core over the Modbus driver
// to the in-process emulator on Modbus TCP, its transactions counted by the link's metrics.
// The core runs on this test's thread (nothing ticks it), so every request counted is the
// command's own.
#include <memory>

#include "gtest/gtest.h"
#include "plugin/backends/modbus/link_metrics.h"
#include "plugin/backends/modbus/modbus_driver.h"
#include "plugin/backends/modbus/modbus_link.h"
#include "plugin/core/clock.h"
#include "plugin/core/device.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"
#include "sim/modbus_emulator/emulator.h"

namespace derma::modbus {
namespace {

class CommandCostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::FleetConfig fleet;
    config::v1::ModbusLink* link = fleet.add_modbus_links();
    link->set_name("cost");
    link->mutable_tcp()->set_host("127.0.0.1");
    config::v1::DeviceConfig* config = fleet.add_devices();
    config->set_id("stim-1");
    config->set_kind(v1::DEVICE_KIND_MICROCURRENT);
    config->set_backend(config::v1::BACKEND_MODBUS);
    config->mutable_modbus()->set_link("cost");
    config->mutable_modbus()->set_unit_id(1);
    emulator::EmulatorOptions options;
    options.grpc_listen = "";
    options.any_tcp_port = true;
    absl::StatusOr<std::unique_ptr<emulator::Emulator>> made =
        emulator::Emulator::Create(fleet, options);
    ASSERT_TRUE(made.ok()) << made.status();
    emulator_ = *std::move(made);
    LinkSettings settings = ResolveLinkSettings(*link);
    const std::string& address = emulator_->endpoints()[0].address;
    settings.port = std::stoi(address.substr(address.rfind(':') + 1));
    settings.watchdog = absl::Seconds(30);
    link_ = std::make_unique<ModbusLink>(settings, metrics_);
    device_ = std::make_unique<Device>(0, "stim-1", std::make_unique<ModbusDriver>(*config, *link_),
                                       DeviceContext{clock_, fanout_, runs_});
    device_->Initialize();
    ASSERT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
    lease_ = device_->AcquireLease("cost", absl::Seconds(60)).value().lease_id;
  }

  // Transactions (tries that got a reply) made by `command`.
  template <typename Command>
  uint64_t Cost(Command command) {
    const uint64_t before = metrics_.requests(RequestOutcome::kOk);
    command();
    return metrics_.requests(RequestOutcome::kOk) - before;
  }

  RealClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<emulator::Emulator> emulator_;
  LinkMetrics metrics_{"cost"};
  std::unique_ptr<ModbusLink> link_;
  std::unique_ptr<Device> device_;
  std::string lease_;
};

TEST_F(CommandCostTest, ConfigureReadsOnceAndWritesTheSetpoints) {
  v1::Settings settings;
  settings.mutable_microcurrent()->set_current_ua(200);
  EXPECT_EQ(Cost([&] { ASSERT_TRUE(device_->Configure(lease_, settings, false).ok()); }), 2u);
}

TEST_F(CommandCostTest, StartAndStopReadOnceAndWriteTheOutputCoil) {
  EXPECT_EQ(Cost([&] { ASSERT_TRUE(device_->Start(lease_, "").ok()); }), 2u);
  EXPECT_EQ(Cost([&] { device_->Stop(); }), 2u);
}

TEST_F(CommandCostTest, EmergencyStopWritesTheStopAndConfirmsItOnce) {
  ASSERT_TRUE(device_->Start(lease_, "").ok());
  EXPECT_EQ(Cost([&] { device_->EmergencyStop(); }), 2u);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
}

TEST_F(CommandCostTest, ATickIsOnePoll) {
  EXPECT_EQ(Cost([&] { device_->Tick(); }), 1u);
}

}  // namespace
}  // namespace derma::modbus
