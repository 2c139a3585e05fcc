// EchoServer: the bare gRPC baseline (tests/bench/echo.proto) on 127.0.0.1:0, on the callback
// API like derma: a unary Echo, and StreamBatches, which writes one pre-serialized
// StreamTelemetryResponse again and again (one write in flight, as derma's stream) until the
// client cancels. No derma code runs behind it. Part of tests/bench. Thread-safe after Start.
#ifndef DERMA_TESTS_BENCH_ECHO_SERVER_H_
#define DERMA_TESTS_BENCH_ECHO_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "plugin/metrics/grpc_metrics.h"

namespace derma::bench {

class EchoServer {
 public:
  // Serves Echo; StreamBatches streams `batch` (serialized derma.v1.StreamTelemetryResponse).
  // With `metrics_interceptor`, the server also runs derma's gRPC metrics interceptor (as
  // Plugin::Register installs it), to tell its share of derma's unary latency.
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(const std::string& batch,
                                                           bool metrics_interceptor);
  ~EchoServer();

  const std::string& address() const { return address_; }

 private:
  class Service;
  EchoServer() = default;

  std::unique_ptr<metrics::GrpcMetrics> metrics_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_ECHO_SERVER_H_
