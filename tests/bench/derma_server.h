// DermaServer: derma embedded the way a host embeds it (plugin.h) behind its own gRPC server on
// 127.0.0.1:0, plus the client helpers the bench calls servers with: a channel per connection
// and deadline-bounded calls whose failures become absl::Status. Part of tests/bench.
// Thread-safe after Start.
#ifndef DERMA_TESTS_BENCH_DERMA_SERVER_H_
#define DERMA_TESTS_BENCH_DERMA_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "plugin/host/plugin.h"

namespace derma::bench {

// Every unary call the bench makes fails DEADLINE_EXCEEDED after this, so a hung service ends
// the run with an error instead of hanging it.
inline constexpr absl::Duration kCallDeadline = absl::Seconds(10);

class DermaServer {
 public:
  // Creates the plugin from `config`, serves it on 127.0.0.1:0 and starts it (devices tick on
  // a real clock).
  static absl::StatusOr<std::unique_ptr<DermaServer>> Start(const config::v1::FleetConfig& config,
                                                            PluginOptions options = {});
  ~DermaServer();  // plugin Shutdown, then the server

  Plugin& plugin() { return *plugin_; }
  const std::string& address() const { return address_; }

 private:
  DermaServer() = default;

  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// A channel with its own TCP connection (no subchannel sharing between channels) and no
// receive size limit.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address);

// Sets the bench's call deadline on `context`.
void SetDeadline(grpc::ClientContext& context);

// OK, or the gRPC error prefixed with `what`.
absl::Status CallStatus(const grpc::Status& status, absl::string_view what);

// The bench's leases: held by "derma_bench" for kBenchLeaseTtl, renewed by its users.
inline constexpr absl::Duration kBenchLeaseTtl = absl::Seconds(60);
// The lease id of a new lease on `device`.
absl::StatusOr<std::string> AcquireBenchLease(v1::DeviceControl::Stub& stub,
                                              const std::string& device);
absl::Status RenewBenchLease(v1::DeviceControl::Stub& stub, const std::string& device,
                             const std::string& lease_id);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_DERMA_SERVER_H_
