#include "sim/modbus_emulator/emulator.h"

#include <map>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "grpcpp/server_builder.h"
#include "plugin/auth/authorizer.h"
#include "plugin/errors/errors.h"
#include "plugin/host/config_loader.h"
#include "plugin/service/call_audit.h"
#include "plugin/service/simulator_service.h"

namespace derma::emulator {
namespace {

// How often the watchdogs and scenario actions are looked at.
constexpr absl::Duration kTickPeriod = absl::Milliseconds(5);

}  // namespace

absl::StatusOr<std::unique_ptr<Emulator>> Emulator::Create(const config::v1::FleetConfig& config,
                                                           EmulatorOptions options) {
  std::unique_ptr<Emulator> emulator(new Emulator());
  if (absl::Status s = emulator->Build(config, options); !s.ok()) return s;
  return emulator;
}

absl::Status Emulator::Build(const config::v1::FleetConfig& config,
                             const EmulatorOptions& options) {
  const absl::Time now = absl::Now();
  print_events_ = options.print_events;
  if (!options.reply_log.empty()) {
    absl::MutexLock lock(&log_mu_);
    reply_log_ = std::fopen(options.reply_log.c_str(), "a");
    if (reply_log_ == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot open ", options.reply_log));
    }
  }
  std::map<std::string, std::vector<EmulatedDevice*>> by_link;
  std::map<std::string, bool> rtu_links;
  for (const config::v1::ModbusLink& link : config.modbus_links()) rtu_links[link.name()] = link.has_rtu();
  for (const config::v1::DeviceConfig& device : host::ExpandFleet(config)) {
    if (device.backend() != config::v1::BACKEND_MODBUS) continue;
    const uint64_t seed = config.sim_seed() ^ absl::HashOf(device.id());
    absl::StatusOr<std::unique_ptr<EmulatedDevice>> emulated =
        EmulatedDevice::Create(device, seed, rtu_links[device.modbus().link()], now, this);
    if (!emulated.ok()) return emulated.status();
    by_link[device.modbus().link()].push_back(emulated->get());
    devices_.push_back(*std::move(emulated));
  }
  for (const config::v1::ModbusLink& link : config.modbus_links()) {
    std::vector<EmulatedDevice*> devices = by_link[link.name()];
    if (link.has_rtu()) {
      absl::StatusOr<std::unique_ptr<RtuBus>> bus =
          RtuBus::Start(link.rtu().device(), link.rtu().baud(), devices);
      if (!bus.ok()) return bus.status();
      endpoints_.push_back({link.name(), true, link.rtu().device(), (*bus)->slave_name()});
      rtu_buses_.push_back(*std::move(bus));
    } else {
      const uint16_t port = options.any_tcp_port ? 0
                            : static_cast<uint16_t>(link.tcp().port() == 0 ? 502 : link.tcp().port());
      absl::StatusOr<std::unique_ptr<TcpServer>> server =
          TcpServer::Start(link.tcp().host(), port, devices);
      if (!server.ok()) return server.status();
      endpoints_.push_back(
          {link.name(), false, absl::StrCat(link.tcp().host(), ":", (*server)->port()), ""});
      tcp_servers_.push_back(*std::move(server));
    }
  }
  control_ = std::make_unique<sim::SimulatorControl>(*this);
  ticker_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(kTickPeriod)) {
      const absl::Time now = absl::Now();
      control_->OnTick(now);
      for (const auto& device : devices_) device->Tick(now);
    }
  });
  return options.grpc_listen.empty() ? absl::OkStatus() : StartGrpc(options.grpc_listen);
}

absl::Status Emulator::StartGrpc(const std::string& listen) {
  authorizer_ = std::make_unique<auth::Authorizer>(std::nullopt);
  call_audit_ = std::make_unique<service::CallAudit>(nullptr);
  service_ = std::make_unique<service::SimulatorService>(*control_, *authorizer_, *call_audit_);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &grpc_port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", listen));
  }
  return absl::OkStatus();
}

Emulator::~Emulator() {
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
  tcp_servers_.clear();
  rtu_buses_.clear();
  absl::MutexLock lock(&log_mu_);
  if (reply_log_ != nullptr) std::fclose(reply_log_);
}

void Emulator::Event(absl::Time t, const std::string& device, const std::string& what) {
  if (!print_events_) return;
  absl::MutexLock lock(&log_mu_);
  absl::PrintF("event %d %s %s\n", absl::ToUnixMicros(t), device, what);
  std::fflush(stdout);
}

void Emulator::PollReply(absl::Time t, const std::string& device, uint16_t tag, uint64_t counter,
                         bool on_time) {
  absl::MutexLock lock(&log_mu_);
  if (reply_log_ == nullptr) return;
  absl::FPrintF(reply_log_, "%d %s %d %d %d\n", absl::ToUnixMicros(t), device, tag, counter,
                on_time ? 1 : 0);
  std::fflush(reply_log_);
}

EmulatedDevice* Emulator::device(absl::string_view name) const {
  for (const auto& device : devices_) {
    if (device->name() == name) return device.get();
  }
  return nullptr;
}

absl::Time Emulator::Now() const { return absl::Now(); }

void Emulator::RunOnDevice(absl::string_view name, sim::DeviceAction action,
                           sim::StatusCallback done) {
  EmulatedDevice* target = device(name);
  if (target == nullptr) {
    std::move(done)(MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_DEVICE_NOT_FOUND,
                              absl::StrCat("no device named ", name, " in the emulator"),
                              {{"device", std::string(name)}}));
    return;
  }
  std::move(done)(target->RunControl(std::move(action), absl::Now()));
}

void Emulator::AdvanceClock(absl::Duration, sim::ClockCallback done) {
  std::move(done)(sim::VirtualClockRequired());
}

void Emulator::SetTransportFault(const sim::v1::SetTransportFaultRequest& request,
                                 sim::StatusCallback done) {
  EmulatedDevice* target = device(request.name());
  if (target == nullptr) {
    RunOnDevice(request.name(), nullptr, std::move(done));  // answers DEVICE_NOT_FOUND
    return;
  }
  std::move(done)(target->SetTransportFault(request));
}

}  // namespace derma::emulator
