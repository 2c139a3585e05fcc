#include "tests/conformance/backend_factories.h"

#include <stdlib.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "plugin/backends/modbus/link_metrics.h"
#include "plugin/backends/modbus/modbus_driver.h"
#include "plugin/backends/modbus/modbus_link.h"
#include "sim/modbus_emulator/emulator.h"
#include "sim/registry.h"
#include "tests/conformance/child_process.h"

namespace derma::conformance {
namespace {

// No gRPC port; every TCP link on a free port.
emulator::EmulatorOptions TestEmulatorOptions() {
  emulator::EmulatorOptions options;
  options.grpc_listen = "";
  options.any_tcp_port = true;
  return options;
}

constexpr int kUnit = 7;

std::string KindName(v1::DeviceKind kind) {
  return kind == v1::DEVICE_KIND_MICRONEEDLING ? "Pen" : "Stimulator";
}

// The link settings of the suite: short timeouts so a dropped link shows quickly, and a
// watchdog longer than the suite's longest pause between requests.
modbus::LinkSettings SuiteLink(bool rtu, const std::string& endpoint) {
  modbus::LinkSettings s;
  s.name = "conformance";
  s.rtu = rtu;
  if (rtu) {
    s.device = endpoint;
    s.baud = 115200;
  } else {
    const size_t colon = endpoint.rfind(':');
    s.host = endpoint.substr(0, colon);
    uint32_t port = 0;
    (void)absl::SimpleAtoi(endpoint.substr(colon + 1), &port);
    s.port = port;
  }
  s.response_timeout = absl::Milliseconds(50);
  s.retries = 1;
  s.backoff = absl::Milliseconds(10);
  s.backoff_max = absl::Milliseconds(50);
  s.watchdog = absl::Seconds(30);
  return s;
}

config::v1::DeviceConfig SuiteDevice(v1::DeviceKind kind) {
  config::v1::DeviceConfig device;
  device.set_id("conformance-1");
  device.set_kind(kind);
  device.set_backend(config::v1::BACKEND_MODBUS);
  device.mutable_modbus()->set_link("conformance");
  device.mutable_modbus()->set_unit_id(kUnit);
  return device;
}

// A Modbus driver on its own link, and what it needs alive.
struct ModbusRig {
  std::unique_ptr<emulator::Emulator> emulator;
  std::unique_ptr<testing::ChildProcess> process;
  std::unique_ptr<sim::SimDevice> control;
  std::string directory;
  modbus::LinkMetrics metrics{"conformance"};
  std::unique_ptr<modbus::ModbusLink> link;
  ~ModbusRig() {
    link.reset();
    emulator.reset();
    if (!directory.empty()) std::system(absl::StrCat("rm -rf ", directory).c_str());
  }
};

// The emulated device's controls as a SimDevice: every action goes through the emulator, as
// the Simulator service's would. The Driver half is not used by the suite.
class EmulatorControl : public sim::SimDevice {
 public:
  EmulatorControl(emulator::Emulator& emulator, std::string name)
      : emulator_(emulator), name_(std::move(name)) {}
  const DriverInfo& Info() const override { return info_; }
  const DeviceDescription* Description() const override { return nullptr; }
  absl::Status Connect(absl::Time) override { return absl::UnimplementedError("control only"); }
  absl::Status Apply(const v1::Settings&, absl::Time) override {
    return absl::UnimplementedError("control only");
  }
  absl::Status SetOutput(bool, absl::Time) override {
    return absl::UnimplementedError("control only");
  }
  absl::StatusOr<DriverReading> Read(absl::Time) override {
    return absl::UnimplementedError("control only");
  }
  bool ForceOutputOff(absl::Time) override { return false; }
  absl::Status InjectFault(v1::FaultKind kind, absl::Time) override {
    return Run([kind](sim::SimDevice& d, absl::Time now) { return d.InjectFault(kind, now); });
  }
  absl::Status ClearFault(v1::FaultKind kind, absl::Time) override {
    return Run([kind](sim::SimDevice& d, absl::Time now) { return d.ClearFault(kind, now); });
  }
  absl::Status SetElectrodeImpedance(double ohms, absl::Time) override {
    return Run(
        [ohms](sim::SimDevice& d, absl::Time now) { return d.SetElectrodeImpedance(ohms, now); });
  }
  void SetLink(bool up, absl::Time) override {
    (void)Run([up](sim::SimDevice& d, absl::Time now) {
      d.SetLink(up, now);
      return absl::OkStatus();
    });
  }

 private:
  absl::Status Run(sim::DeviceAction action) {
    absl::Status result;
    emulator_.RunOnDevice(name_, std::move(action), [&result](absl::Status s) { result = s; });
    return result;
  }
  emulator::Emulator& emulator_;
  const std::string name_;
  DriverInfo info_;
};

DriverUnderTest Finish(std::shared_ptr<ModbusRig> rig, v1::DeviceKind kind) {
  DriverUnderTest out;
  out.driver = std::make_unique<modbus::ModbusDriver>(SuiteDevice(kind), *rig->link);
  out.sim = rig->control.get();
  out.real_time = true;
  out.keepalive = std::move(rig);
  return out;
}

DriverUnderTest MakeEmulated(v1::DeviceKind kind, bool rtu) {
  auto rig = std::make_shared<ModbusRig>();
  config::v1::FleetConfig fleet;
  config::v1::ModbusLink* link = fleet.add_modbus_links();
  link->set_name("conformance");
  if (rtu) {
    char pattern[] = "/tmp/derma-conformance-XXXXXX";
    rig->directory = ::mkdtemp(pattern);
    link->mutable_rtu()->set_device(rig->directory + "/bus");
    link->mutable_rtu()->set_baud(115200);
  } else {
    link->mutable_tcp()->set_host("127.0.0.1");
  }
  *fleet.add_devices() = SuiteDevice(kind);
  if (!rtu) link->mutable_tcp()->set_port(0);
  absl::StatusOr<std::unique_ptr<emulator::Emulator>> emulator =
      emulator::Emulator::Create(fleet, TestEmulatorOptions());
  EXPECT_TRUE(emulator.ok()) << emulator.status();
  if (!emulator.ok()) return {};
  rig->emulator = *std::move(emulator);
  rig->control = std::make_unique<EmulatorControl>(*rig->emulator, "devices/conformance-1");
  rig->link = std::make_unique<modbus::ModbusLink>(
      SuiteLink(rtu, rig->emulator->endpoints()[0].address), rig->metrics);
  return Finish(std::move(rig), kind);
}

DriverUnderTest MakeIndependent(v1::DeviceKind kind) {
  auto rig = std::make_shared<ModbusRig>();
  absl::StatusOr<std::unique_ptr<testing::ChildProcess>> process = testing::ChildProcess::Start(
      {"/usr/bin/python3", DERMA_SOURCE_DIR "/tests/conformance/independent_device/derma_device.py",
       "--kind", kind == v1::DEVICE_KIND_MICRONEEDLING ? "pen" : "stimulator", "--unit",
       absl::StrCat(kUnit), "--port", "0"});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return {};
  rig->process = *std::move(process);
  std::optional<std::string> line = rig->process->WaitForLine("port ", absl::Seconds(20));
  EXPECT_TRUE(line.has_value()) << "the independent device printed no port";
  if (!line.has_value()) return {};
  rig->link = std::make_unique<modbus::ModbusLink>(
      SuiteLink(false, absl::StrCat("127.0.0.1:", line->substr(5))), rig->metrics);
  return Finish(std::move(rig), kind);
}

}  // namespace

std::vector<BackendFactory> SimBackends() {
  std::vector<BackendFactory> out;
  for (const sim::SimKind& kind : sim::SimKinds()) {
    for (const std::string& model : kind.models) {
      std::string kind_name =
          absl::StrReplaceAll(v1::DeviceKind_Name(kind.kind), {{"DEVICE_KIND_", ""}});
      std::string name =
          absl::StrReplaceAll(absl::StrCat("Sim_", kind_name, "_", model), {{"-", "_"}});
      out.push_back({name, [kind = kind.kind, model] {
                       config::v1::DeviceConfig config;
                       config.set_id("conformance-1");
                       config.set_kind(kind);
                       config.set_model(model);
                       auto device = sim::CreateSimDevice({config, 1234});
                       EXPECT_TRUE(device.ok()) << device.status();
                       DriverUnderTest out;
                       if (!device.ok()) return out;
                       out.sim = device->get();
                       out.driver = std::move(*device);
                       return out;
                     }});
    }
  }
  return out;
}

std::vector<BackendFactory> EmulatorBackends() {
  std::vector<BackendFactory> out;
  for (v1::DeviceKind kind : {v1::DEVICE_KIND_MICRONEEDLING, v1::DEVICE_KIND_MICROCURRENT}) {
    out.push_back({"ModbusTcp_" + KindName(kind), [kind] { return MakeEmulated(kind, false); }});
    out.push_back({"ModbusRtu_" + KindName(kind), [kind] { return MakeEmulated(kind, true); }});
  }
  return out;
}

std::vector<BackendFactory> IndependentDeviceBackends() {
  std::vector<BackendFactory> out;
  for (v1::DeviceKind kind : {v1::DEVICE_KIND_MICRONEEDLING, v1::DEVICE_KIND_MICROCURRENT}) {
    out.push_back({"Independent_" + KindName(kind), [kind] { return MakeIndependent(kind); }});
  }
  return out;
}

}  // namespace derma::conformance
