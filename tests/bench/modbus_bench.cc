// derma_modbus_bench: the Modbus backend against its baselines, in one run, on the in-process
// device emulator (the same code as derma_modbus_emulator):
//   - one Modbus TCP device polled back to back: tagged polls per second through derma ÷ a bare
//     libmodbus loop of the same request against the same emulator (goal ≥ 0.9×);
//   - sixteen devices on one RTU bus at 115200 baud (the emulator paces replies at 11 bits per
//     character): each device's achieved sample rate ÷ the bound the bus's frame times allow
//     (goal ≥ 0.8×);
//   - EmergencyStop(all) on that bus, from the call to the last output confirmed off (one
//     broadcast, then a confirmation read per device), against the bound: one response timeout
//     (a transaction in flight) + the broadcast frame + the devices' declared turnaround and
//     reaction + sixteen confirmations (goal: p99 within it);
//   - Configure over Modbus TCP through gRPC ÷ a bare setpoint write (information: a command
//     reads the device to catch up, then writes).
// Goals are reported, not asserted; the exit status is non-zero only when something broke.
//
//   cmake --build build -j2 --target derma_modbus_bench && build/tests/bench/derma_modbus_bench
#include <modbus.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "plugin/backends/modbus/register_map.h"
#include "plugin/host/plugin.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "sim/modbus_emulator/emulator.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/table.h"

ABSL_FLAG(bool, quick, false, "Short smoke run (CI): 0.5 s windows and few calls.");
ABSL_FLAG(double, window_s, 3, "Seconds each poll rate is counted.");
ABSL_FLAG(int, estop_calls, 20, "EmergencyStop(all) calls measured on the bus.");
ABSL_FLAG(int, configure_calls, 300, "Configure calls (and bare writes) measured.");

namespace derma::bench {
namespace {

// No gRPC port; every TCP link on a free port.
emulator::EmulatorOptions TestEmulatorOptions() {
  emulator::EmulatorOptions options;
  options.grpc_listen = "";
  options.any_tcp_port = true;
  return options;
}

namespace map = modbus_map;

constexpr int kBusDevices = 16;
constexpr int kBaud = 115200;
constexpr double kResponseTimeoutS = 0.1;
// One tagged poll on RTU: request 15 bytes (unit, 23, read and write ranges, byte count, tag,
// CRC) and reply 69 (unit, 23, byte count, 64 data, CRC), each followed by a 3.5-character gap.
constexpr double kPollCharacters = 15 + 69 + 2 * 3.5;
constexpr double kBroadcastCharacters = 8 + 3.5;

double CharTimeS() { return 11.0 / kBaud; }

void Progress(absl::string_view what) { std::cerr << "derma_modbus_bench: " << what << "\n"; }

struct Rig {
  std::string directory;
  std::unique_ptr<emulator::Emulator> emulator;
  ~Rig() {
    emulator.reset();
    if (!directory.empty()) std::system(absl::StrCat("rm -rf ", directory).c_str());
  }
};

// A fleet of `count` devices of `kind` on one link, and an emulator serving it.
absl::StatusOr<config::v1::FleetConfig> StartRig(Rig& rig, bool rtu, int count,
                                                 bool back_to_back, double sample_rate_hz) {
  config::v1::FleetConfig fleet;
  fleet.mutable_clock()->set_mode(config::v1::CLOCK_MODE_REAL);
  fleet.set_sample_rate_hz(sample_rate_hz);
  config::v1::ModbusLink* link = fleet.add_modbus_links();
  link->set_name("bench");
  if (rtu) {
    char pattern[] = "/tmp/derma-modbus-bench-XXXXXX";
    rig.directory = ::mkdtemp(pattern);
    link->mutable_rtu()->set_device(rig.directory + "/bus");
    link->mutable_rtu()->set_baud(kBaud);
  } else {
    link->mutable_tcp()->set_host("127.0.0.1");
  }
  link->set_response_timeout_s(kResponseTimeoutS);
  link->set_watchdog_s(5);
  link->set_poll_back_to_back(back_to_back);
  for (int i = 1; i <= count; ++i) {
    config::v1::DeviceConfig* d = fleet.add_devices();
    d->set_id(absl::StrCat("dev-", i));
    d->set_kind(i % 2 == 1 ? v1::DEVICE_KIND_MICRONEEDLING : v1::DEVICE_KIND_MICROCURRENT);
    d->set_backend(config::v1::BACKEND_MODBUS);
    d->mutable_modbus()->set_link("bench");
    d->mutable_modbus()->set_unit_id(i);
  }
  absl::StatusOr<std::unique_ptr<emulator::Emulator>> emulator =
      emulator::Emulator::Create(fleet, TestEmulatorOptions());
  if (!emulator.ok()) return emulator.status();
  rig.emulator = *std::move(emulator);
  if (!rtu) {
    const std::string& address = rig.emulator->endpoints()[0].address;
    link->mutable_tcp()->set_port(std::stoi(address.substr(address.rfind(':') + 1)));
  }
  return fleet;
}

// Requests the plugin's Modbus link has made so far that ended `outcome` ("" for any but ok).
double Requests(Plugin& plugin, absl::string_view outcome = "ok") {
  double ok = 0;
  for (const auto& backend : plugin.fleet().backends()) {
    auto metrics = backend->Metrics();
    if (metrics == nullptr) continue;
    for (const auto& family : metrics->Collect()) {
      if (family.name != "derma_modbus_requests_total") continue;
      for (const auto& m : family.metric) {
        for (const auto& label : m.label) {
          if (label.name != "outcome") continue;
          if (outcome.empty() ? label.value != "ok" : label.value == outcome) {
            ok += m.counter.value;
          }
        }
      }
    }
  }
  return ok;
}

// Requests per second the plugin makes over `window`.
double RequestRate(Plugin& plugin, absl::Duration window) {
  absl::SleepFor(absl::Milliseconds(300));  // connected, polling
  const double before = Requests(plugin);
  const absl::Time start = absl::Now();
  absl::SleepFor(window);
  return (Requests(plugin) - before) / absl::ToDoubleSeconds(absl::Now() - start);
}

modbus_t* BareTcp(const Rig& rig) {
  const std::string& address = rig.emulator->endpoints()[0].address;
  const size_t colon = address.rfind(':');
  modbus_t* ctx = modbus_new_tcp(address.substr(0, colon).c_str(),
                                 std::stoi(address.substr(colon + 1)));
  if (ctx == nullptr || modbus_connect(ctx) == -1) return nullptr;
  modbus_set_slave(ctx, 1);
  return ctx;
}

absl::Status MeasureTcpPolls(Table& table, absl::Duration window) {
  Rig rig;
  absl::StatusOr<config::v1::FleetConfig> fleet = StartRig(rig, false, 1, true, 100);
  if (!fleet.ok()) return fleet.status();
  Progress("bare libmodbus tagged polls, TCP");
  modbus_t* ctx = BareTcp(rig);
  if (ctx == nullptr) return absl::UnavailableError("bare libmodbus cannot connect");
  uint16_t tag = 1, snapshot[map::kSnapshotLength];
  int64_t polls = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < window) {
    if (modbus_write_and_read_registers(ctx, map::kPollTag, 1, &tag, map::kSnapshotAddress,
                                        map::kSnapshotLength, snapshot) == -1) {
      modbus_free(ctx);
      return absl::InternalError(absl::StrCat("bare poll: ", modbus_strerror(errno)));
    }
    ++tag;
    ++polls;
  }
  const double bare = polls / absl::ToDoubleSeconds(absl::Now() - start);
  modbus_close(ctx);
  modbus_free(ctx);
  Progress("derma back-to-back polls, TCP");
  absl::StatusOr<std::unique_ptr<Plugin>> plugin = Plugin::Create(*fleet);
  if (!plugin.ok()) return plugin.status();
  (*plugin)->Start();
  const double derma = RequestRate(**plugin, window);
  (*plugin)->Shutdown();
  table.AddInfo("Modbus TCP: bare libmodbus tagged polls", absl::StrFormat("%.0f /s", bare));
  table.AddGoal("Modbus TCP: derma polls, back to back, 1 device",
                absl::StrFormat("%.0f /s (%s)", derma, FormatRatio(derma / bare)),
                "≥ 0.90× bare", derma >= 0.9 * bare);
  return absl::OkStatus();
}

absl::Status MeasureBus(Table& table, absl::Duration window, int estop_calls) {
  Rig rig;
  // The sample rate asks for more than the bus carries: polls coalesce.
  absl::StatusOr<config::v1::FleetConfig> fleet = StartRig(rig, true, kBusDevices, false, 100);
  if (!fleet.ok()) return fleet.status();
  absl::StatusOr<std::unique_ptr<Plugin>> plugin = Plugin::Create(*fleet);
  if (!plugin.ok()) return plugin.status();
  (*plugin)->Start();
  Progress("16 devices on an RTU bus at 115200 baud");
  const double per_device = RequestRate(**plugin, window) / kBusDevices;
  const double bound = 1 / (kBusDevices * kPollCharacters * CharTimeS());
  table.AddInfo("RTU bus 16 × 115200: frame-time bound per device",
                absl::StrFormat("%.2f Hz", bound), "tagged poll: 84 characters + 2 gaps");
  table.AddGoal("RTU bus 16 × 115200: achieved per device",
                absl::StrFormat("%.2f Hz (%s)", per_device, FormatRatio(per_device / bound)),
                "≥ 0.80× bound", per_device >= 0.8 * bound);

  Progress("EmergencyStop(all) on the bus");
  DeviceManager& devices = (*plugin)->fleet().devices();
  std::vector<std::string> leases(devices.size());
  for (uint32_t i = 0; i < devices.size(); ++i) {
    leases[i] = devices.Call(i, [](Device& d) {
      return d.AcquireLease("bench", absl::Seconds(60)).value().lease_id;
    });
  }
  std::vector<absl::Duration> stops;
  const double failed_before = Requests(**plugin, "");
  for (int call = 0; call < estop_calls; ++call) {
    for (uint32_t i = 0; i < devices.size(); ++i) {
      absl::Status started = devices.Call(i, [&](Device& d) {
        if (d.state() == v1::DEVICE_STATE_ESTOPPED) (void)d.ResetEmergencyStop(leases[i]);
        return d.Start(leases[i], "");
      });
      if (!started.ok()) return started;
    }
    const absl::Time start = absl::Now();
    devices.Wait([&](Done done) { devices.EmergencyStopAll(std::move(done)); });
    stops.push_back(absl::Now() - start);
    for (uint32_t i = 0; i < devices.size(); ++i) {
      const bool off = devices.Call(i, [](Device& d) {
        return !d.last_reading().output_on && !d.output_unconfirmed();
      });
      if (!off || rig.emulator->device(absl::StrCat("devices/dev-", i + 1))->output_on()) {
        return absl::InternalError(absl::StrCat("dev-", i + 1, " on after EmergencyStop(all)"));
      }
    }
  }
  const double failed = Requests(**plugin, "") - failed_before;
  (*plugin)->Shutdown();
  const Percentiles p = ComputePercentiles(stops);
  const absl::Duration stop_bound =
      absl::Seconds(kResponseTimeoutS + kBroadcastCharacters * CharTimeS()) +
      absl::Milliseconds(emulator::kBroadcastTurnaroundMs + emulator::kOutputOffReactionMs) +
      absl::Seconds(kBusDevices * kPollCharacters * CharTimeS());
  table.AddGoal("RTU bus 16 × 115200: EmergencyStop(all) to last confirmed off",
                absl::StrCat("p50 ", FormatLatency(p.p50), ", p99 ", FormatLatency(p.p99), " (",
                             failed, " failed tries)"),
                absl::StrCat("p99 ≤ ", FormatLatency(stop_bound)), p.p99 <= stop_bound);
  return absl::OkStatus();
}

absl::Status MeasureConfigure(Table& table, int calls) {
  Rig rig;
  absl::StatusOr<config::v1::FleetConfig> fleet = StartRig(rig, false, 1, false, 50);
  if (!fleet.ok()) return fleet.status();
  Progress("bare setpoint writes, TCP");
  modbus_t* ctx = BareTcp(rig);
  if (ctx == nullptr) return absl::UnavailableError("bare libmodbus cannot connect");
  const uint16_t setpoints[map::kPenSetpointsLength] = {0, 500, 0, 10000, 18, 20352};
  std::vector<absl::Duration> bare;
  for (int i = 0; i < calls; ++i) {
    const absl::Time start = absl::Now();
    if (modbus_write_registers(ctx, map::kSetpoints, map::kPenSetpointsLength, setpoints) == -1) {
      modbus_free(ctx);
      return absl::InternalError(absl::StrCat("bare write: ", modbus_strerror(errno)));
    }
    bare.push_back(absl::Now() - start);
  }
  modbus_close(ctx);
  modbus_free(ctx);
  absl::StatusOr<std::unique_ptr<DermaServer>> derma = DermaServer::Start(*fleet);
  if (!derma.ok()) return derma.status();
  absl::SleepFor(absl::Milliseconds(300));
  auto stub = v1::DeviceControl::NewStub(NewChannel((*derma)->address()));
  v1::AcquireLeaseRequest lease_request;
  lease_request.set_name("devices/dev-1");
  lease_request.set_holder("bench");
  lease_request.set_ttl_s(60);
  v1::AcquireLeaseResponse lease;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    if (absl::Status s = CallStatus(stub->AcquireLease(&context, lease_request, &lease), "lease");
        !s.ok()) {
      return s;
    }
  }
  Progress("Configure over Modbus TCP");
  std::vector<absl::Duration> configure;
  for (int i = 0; i < calls; ++i) {
    v1::ConfigureRequest request;
    request.set_name("devices/dev-1");
    request.set_lease_id(lease.lease().lease_id());
    request.mutable_settings()->mutable_microneedling()->set_stroke_rate_hz(100 + i % 2);
    v1::ConfigureResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    const absl::Time start = absl::Now();
    if (absl::Status s = CallStatus(stub->Configure(&context, request, &response), "Configure");
        !s.ok()) {
      return s;
    }
    configure.push_back(absl::Now() - start);
  }
  const Percentiles b = ComputePercentiles(bare);
  const Percentiles c = ComputePercentiles(configure);
  table.AddInfo("Modbus TCP: bare setpoint write (code 16)",
                absl::StrCat("p50 ", FormatLatency(b.p50), ", p99 ", FormatLatency(b.p99)));
  table.AddInfo("Modbus TCP: Configure through gRPC",
                absl::StrCat("p50 ", FormatLatency(c.p50), " (",
                             FormatRatio(absl::ToDoubleSeconds(c.p50) /
                                         absl::ToDoubleSeconds(b.p50)),
                             " the bare write)"),
                "a catch-up poll + the write + gRPC");
  return absl::OkStatus();
}

}  // namespace
}  // namespace derma::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const bool quick = absl::GetFlag(FLAGS_quick);
  const absl::Duration window = absl::Seconds(quick ? 0.5 : absl::GetFlag(FLAGS_window_s));
  derma::bench::Table table;
  absl::Status status = derma::bench::MeasureTcpPolls(table, window);
  if (status.ok()) {
    status = derma::bench::MeasureBus(table, window, quick ? 3 : absl::GetFlag(FLAGS_estop_calls));
  }
  if (status.ok()) {
    status = derma::bench::MeasureConfigure(table, quick ? 30 : absl::GetFlag(FLAGS_configure_calls));
  }
  table.Print(std::cout);
  if (!status.ok()) {
    std::cerr << "derma_modbus_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
