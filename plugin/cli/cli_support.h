// Support for dermactl: exit codes, the connection, JSON output, and the lease a command holds
// while it runs. Failed calls are put into words by call_failure.h. Layer: plugin/cli (a client of
// the contract; it links no service code). Not thread-safe except LeaseKeeper.
#ifndef DERMA_PLUGIN_CLI_CLI_SUPPORT_H_
#define DERMA_PLUGIN_CLI_CLI_SUPPORT_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "derma/sim/v1/simulator.grpc.pb.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "plugin/cli/credentials.h"

namespace derma::cli {

// dermactl's exit codes.
enum ExitCode : int {
  kOk = 0,
  kUsage = 2,
  kDeviceError = 3,        // the server refused: bad settings, wrong state, lease, not found...
  kConnectionError = 4,    // no server, or it went away
  kAuditTrailBroken = 5,   // audit verify: the hash chain has a broken link
  kTlsFailure = 6,         // the TLS handshake failed (trust, name, client certificate, protocol)
  kAccessDenied = 7,       // the server refused the credentials (UNAUTHENTICATED) or the role
  kOutputUnconfirmed = 8,  // estop: carried out, but derma could not confirm some outputs off
};

// Set by SIGINT/SIGTERM; long commands poll it and clean up.
extern std::atomic<bool> g_interrupted;

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::DeviceControl::Stub> devices;
  std::unique_ptr<sim::v1::Simulator::Stub> simulator;
  TransportFacts facts;  // how it connects, for error messages
};
// Opens the channel `plan` describes (no connection is made until the first call). gRPC's own
// log lines are swallowed from here on unless $GRPC_VERBOSITY is set: dermactl's errors say
// what failed (call_failure.h).
Connection Connect(const ChannelPlan& plan);

// A client context with the default deadline (10 s), or none for streams.
std::unique_ptr<grpc::ClientContext> Call(bool stream = false);

// Message as one-line JSON (proto field names).
std::string Json(const google::protobuf::Message& message);

// "devices/pen-1" from "pen-1" or "devices/pen-1".
std::string DeviceName(const std::string& arg);

// Holds a device's lease while a command runs: acquires it, renews it in the background, and
// releases it on destruction. Thread-safe.
class LeaseKeeper {
 public:
  static constexpr double kTtlS = 10;
  // Acquires the lease; on failure `status()` is the error and nothing runs.
  LeaseKeeper(v1::DeviceControl::Stub& stub, const std::string& device);
  ~LeaseKeeper();
  const grpc::Status& status() const { return status_; }
  const std::string& lease_id() const { return lease_id_; }

 private:
  v1::DeviceControl::Stub& stub_;
  const std::string device_;
  grpc::Status status_;
  std::string lease_id_;
  absl::Notification stop_;
  std::thread renewer_;
};

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_CLI_SUPPORT_H_
