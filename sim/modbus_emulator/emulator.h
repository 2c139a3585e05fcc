// Emulator: the Modbus device emulator — every BACKEND_MODBUS device of a fleet config served
// as an EmulatedDevice on its link (Modbus TCP on the link's host:port, Modbus RTU on a
// pseudo-terminal at the link's device path), with derma.sim.v1.Simulator on its own gRPC port
// for faults, scenarios and transport faults. The same config file serves dermad and the
// emulator. Layer: sim/modbus_emulator (a host of its own, like dermad). Thread-safe.
#ifndef DERMA_SIM_MODBUS_EMULATOR_EMULATOR_H_
#define DERMA_SIM_MODBUS_EMULATOR_EMULATOR_H_

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "derma/config/v1/config.pb.h"
#include "grpcpp/server.h"
#include "sim/modbus_emulator/emulated_device.h"
#include "sim/modbus_emulator/transport.h"
#include "sim/simulator_control.h"

namespace derma {
namespace auth {
class Authorizer;
}
namespace service {
class CallAudit;
class SimulatorService;
}  // namespace service
}  // namespace derma

namespace derma::emulator {

struct EmulatorOptions {
  // Where derma.sim.v1.Simulator listens ("" for none); port 0 picks a free one.
  std::string grpc_listen = "127.0.0.1:0";
  // Serve each TCP link on a free port of its host instead of its configured port (for tests;
  // endpoints() and the start lines tell which).
  bool any_tcp_port = false;
  // Print every device event to stdout: "event UNIX_US devices/ID WHAT" (EmulatorLog::Event).
  bool print_events = false;
  // Append every tagged poll's reply to this file ("" for none), one line each:
  // "UNIX_US devices/ID TAG COUNTER ON_TIME" (EmulatorLog::PollReply; ON_TIME 1 or 0).
  std::string reply_log;
};

// Where a link is served: "host:port" for TCP, the device path for RTU.
struct LinkEndpoint {
  std::string link;
  bool rtu = false;
  std::string address;
  std::string pty;  // RTU: the pseudo-terminal the path points to
};

class Emulator : public sim::SimDeviceHost, private EmulatorLog {
 public:
  // Validates nothing but what it needs (use dermad's config validation first): every Modbus
  // device of `config` on its link. A TCP link listens on its configured host:port.
  static absl::StatusOr<std::unique_ptr<Emulator>> Create(const config::v1::FleetConfig& config,
                                                          EmulatorOptions options = {});
  ~Emulator() override;

  int grpc_port() const { return grpc_port_; }
  const std::vector<LinkEndpoint>& endpoints() const { return endpoints_; }
  // The device named "devices/{id}", or null.
  EmulatedDevice* device(absl::string_view name) const;
  sim::SimulatorControl& control() { return *control_; }

  // SimDeviceHost: each action runs under the device's lock at the wall clock's time.
  void RunOnDevice(absl::string_view name, sim::DeviceAction action,
                   sim::StatusCallback done) override;
  bool HasDevice(absl::string_view name) const override { return device(name) != nullptr; }
  absl::Time Now() const override;
  void AdvanceClock(absl::Duration delta, sim::ClockCallback done) override;
  void SetTransportFault(const sim::v1::SetTransportFaultRequest& request,
                         sim::StatusCallback done) override;

 private:
  Emulator() = default;
  void Event(absl::Time t, const std::string& device, const std::string& what) override;
  void PollReply(absl::Time t, const std::string& device, uint16_t tag, uint64_t counter,
                 bool on_time) override;
  absl::Status Build(const config::v1::FleetConfig& config, const EmulatorOptions& options);
  absl::Status StartGrpc(const std::string& listen);

  bool print_events_ = false;
  absl::Mutex log_mu_;
  std::FILE* reply_log_ ABSL_GUARDED_BY(log_mu_) = nullptr;
  std::vector<std::unique_ptr<EmulatedDevice>> devices_;
  std::vector<std::unique_ptr<TcpServer>> tcp_servers_;
  std::vector<std::unique_ptr<RtuBus>> rtu_buses_;
  std::vector<LinkEndpoint> endpoints_;
  std::unique_ptr<sim::SimulatorControl> control_;
  std::unique_ptr<auth::Authorizer> authorizer_;
  std::unique_ptr<service::CallAudit> call_audit_;
  std::unique_ptr<service::SimulatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  absl::Notification stop_;
  std::thread ticker_;
};

}  // namespace derma::emulator

#endif  // DERMA_SIM_MODBUS_EMULATOR_EMULATOR_H_
