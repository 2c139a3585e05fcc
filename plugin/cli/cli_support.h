// Support for dermactl: exit codes, the connection, turning gRPC errors into plain words, JSON
// output, and the lease a command holds while it runs. Layer: plugin/cli (a client of the
// contract; it links no service code). Not thread-safe except LeaseKeeper.
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

namespace derma::cli {

// dermactl's exit codes.
enum ExitCode : int {
  kOk = 0,
  kUsage = 2,
  kDeviceError = 3,       // the server refused: bad settings, wrong state, lease, not found...
  kConnectionError = 4,   // no server, or it went away
  kAuditTrailBroken = 5,  // audit verify: the hash chain has a broken link
};

// Set by SIGINT/SIGTERM; long commands poll it and clean up.
extern std::atomic<bool> g_interrupted;

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::DeviceControl::Stub> devices;
  std::unique_ptr<sim::v1::Simulator::Stub> simulator;
};
Connection Connect(const std::string& target);

// A client context with the default deadline (10 s), or none for streams.
std::unique_ptr<grpc::ClientContext> Call(bool stream = false);

// Prints a failed call in plain words to stderr — the reason, the message, each bad field —
// and returns the exit code for it.
int Report(const grpc::Status& status);

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
