// GrpcMetrics: server-side gRPC metrics — calls handled by method and status code, and handling
// time by method — recorded by a server interceptor into a prometheus-cpp registry. Labels are
// bounded: methods of the registered services, and gRPC status codes.
// Layer: plugin/metrics. Thread-safe.
#ifndef DERMA_PLUGIN_METRICS_GRPC_METRICS_H_
#define DERMA_PLUGIN_METRICS_GRPC_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
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

  // One method's series, found once per call and kept, so recording a call builds no label set
  // (prometheus-cpp's Family::Add hashes a std::map of labels on every call).
  class MethodSeries {
   public:
    void Record(grpc::StatusCode code, double seconds);

   private:
    friend class GrpcMetrics;
    MethodSeries(GrpcMetrics& metrics, std::string method);
    GrpcMetrics& metrics_;
    const std::string method_;
    prometheus::Histogram& handling_;
    // By status code (0–16; anything else counts as UNKNOWN); made on the code's first call,
    // so a method shows only the codes it answered.
    std::array<std::atomic<prometheus::Counter*>, 17> handled_{};
  };

  // `method` is "/package.Service/Method". The series live as long as this object.
  MethodSeries& ForMethod(absl::string_view method);
  void Record(absl::string_view method, grpc::StatusCode code, double seconds) {
    ForMethod(method).Record(code, seconds);
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
  absl::Mutex mu_;  // guards making series; recording takes no lock of ours
  absl::flat_hash_map<std::string, std::unique_ptr<MethodSeries>> methods_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_GRPC_METRICS_H_
