// GrpcMetrics: server-side gRPC metrics — calls handled by method and status code, and handling
// time by method — recorded by a server interceptor into a prometheus-cpp registry. Labels are
// bounded: methods of the registered services, and gRPC status codes.
// Layer: plugin/metrics. Thread-safe.
#ifndef DERMA_PLUGIN_METRICS_GRPC_METRICS_H_
#define DERMA_PLUGIN_METRICS_GRPC_METRICS_H_

#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace derma::metrics {

class GrpcMetrics {
 public:
  GrpcMetrics();

  // The registry holding the gRPC families and derma_build_info; register it with the Exposer.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // An interceptor factory for grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeInterceptorFactory();

  // `method` is "/package.Service/Method".
  void Record(const std::string& method, grpc::StatusCode code, double seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_GRPC_METRICS_H_
