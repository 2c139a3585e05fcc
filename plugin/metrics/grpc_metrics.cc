#include "plugin/metrics/grpc_metrics.h"

#include <chrono>
#include <utility>

#include "absl/strings/string_view.h"
#include "prometheus/gauge.h"

#ifndef DERMA_VERSION
#define DERMA_VERSION "unknown"
#endif

namespace derma::metrics {
namespace {

// gRPC status code names, as in the gRPC spec ("OK", "INVALID_ARGUMENT", ...).
const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

// Handling time buckets: 50 µs to 10 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
  return kBuckets;
}

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(GrpcMetrics::MethodSeries& series)
      : series_(series), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
      series_.Record(methods->GetSendStatus().error_code(), elapsed.count());
    }
    methods->Proceed();
  }

 private:
  GrpcMetrics::MethodSeries& series_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(GrpcMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_.ForMethod(info->method()));
  }

 private:
  GrpcMetrics& metrics_;
};

}  // namespace

GrpcMetrics::GrpcMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      handled_(prometheus::BuildCounter()
                   .Name("derma_grpc_server_handled_total")
                   .Help("gRPC calls completed, by method and status code.")
                   .Register(*registry_)),
      handling_(prometheus::BuildHistogram()
                    .Name("derma_grpc_server_handling_seconds")
                    .Help("Time from the start of a gRPC call to its status, by method.")
                    .Register(*registry_)) {
  prometheus::BuildGauge()
      .Name("derma_build_info")
      .Help("derma build (value 1).")
      .Register(*registry_)
      .Add({{"version", DERMA_VERSION}})
      .Set(1);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcMetrics::MakeInterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(*this);
}

GrpcMetrics::MethodSeries& GrpcMetrics::ForMethod(absl::string_view method) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = methods_.find(method); it != methods_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<MethodSeries>& series = methods_[method];
  if (series == nullptr) series.reset(new MethodSeries(*this, std::string(method)));
  return *series;
}

GrpcMetrics::MethodSeries::MethodSeries(GrpcMetrics& metrics, std::string method)
    : metrics_(metrics),
      method_(std::move(method)),
      handling_(metrics.handling_.Add({{"method", method_}}, LatencyBuckets())) {}

void GrpcMetrics::MethodSeries::Record(grpc::StatusCode code, double seconds) {
  const int raw = static_cast<int>(code);
  const size_t index = raw >= 0 && raw < static_cast<int>(handled_.size())
                           ? static_cast<size_t>(raw)
                           : static_cast<size_t>(grpc::StatusCode::UNKNOWN);
  prometheus::Counter* counter = handled_[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    absl::MutexLock lock(&metrics_.mu_);  // one series per code, even if two calls race here
    counter = handled_[index].load(std::memory_order_relaxed);
    if (counter == nullptr) {
      counter = &metrics_.handled_.Add(
          {{"method", method_}, {"code", CodeName(static_cast<grpc::StatusCode>(index))}});
      handled_[index].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
  handling_.Observe(seconds);
}

}  // namespace derma::metrics
