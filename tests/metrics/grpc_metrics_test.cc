// GrpcMetrics: what a scrape shows after calls are recorded (series per method and code, the
// handling-time histogram), including calls recorded from many threads at once.
#include "plugin/metrics/grpc_metrics.h"

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace derma::metrics {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// derma_grpc_server_handled_total as {"method code": value}.
std::map<std::string, double> Handled(const GrpcMetrics& metrics) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    if (family.name != "derma_grpc_server_handled_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& label : metric.label) labels[label.name] = label.value;
      out[labels["method"] + " " + labels["code"]] = metric.counter.value;
    }
  }
  return out;
}

// Sample count of derma_grpc_server_handling_seconds for `method`.
uint64_t HandlingCount(const GrpcMetrics& metrics, const std::string& method) {
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    if (family.name != "derma_grpc_server_handling_seconds") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "method" && label.value == method) {
          return metric.histogram.sample_count;
        }
      }
    }
  }
  return 0;
}

TEST(GrpcMetricsTest, CountsCallsByMethodAndCodeShowingOnlyCodesAnswered) {
  GrpcMetrics metrics;
  metrics.Record("/derma.v1.DeviceControl/GetDevice", grpc::StatusCode::OK, 0.0001);
  metrics.Record("/derma.v1.DeviceControl/GetDevice", grpc::StatusCode::OK, 0.0002);
  metrics.Record("/derma.v1.DeviceControl/GetDevice", grpc::StatusCode::NOT_FOUND, 0.0001);
  metrics.Record("/derma.v1.DeviceControl/Configure", grpc::StatusCode::INVALID_ARGUMENT, 0.001);
  EXPECT_THAT(Handled(metrics),
              UnorderedElementsAre(Pair("/derma.v1.DeviceControl/GetDevice OK", 2),
                                   Pair("/derma.v1.DeviceControl/GetDevice NOT_FOUND", 1),
                                   Pair("/derma.v1.DeviceControl/Configure INVALID_ARGUMENT", 1)));
  EXPECT_EQ(HandlingCount(metrics, "/derma.v1.DeviceControl/GetDevice"), 3u);
  EXPECT_EQ(HandlingCount(metrics, "/derma.v1.DeviceControl/Configure"), 1u);
}

TEST(GrpcMetricsTest, ACodeOutsideTheSpecCountsAsUnknown) {
  GrpcMetrics metrics;
  metrics.Record("/derma.v1.DeviceControl/GetDevice", static_cast<grpc::StatusCode>(99), 0.001);
  EXPECT_THAT(Handled(metrics),
              UnorderedElementsAre(Pair("/derma.v1.DeviceControl/GetDevice UNKNOWN", 1)));
}

TEST(GrpcMetricsTest, TheSeriesOfAMethodAreFoundOnceAndKept) {
  GrpcMetrics metrics;
  GrpcMetrics::MethodSeries& first = metrics.ForMethod("/derma.v1.DeviceControl/Stop");
  EXPECT_EQ(&first, &metrics.ForMethod("/derma.v1.DeviceControl/Stop"));
  EXPECT_NE(&first, &metrics.ForMethod("/derma.v1.DeviceControl/Pause"));
}

TEST(GrpcMetricsTest, CallsRecordedFromManyThreadsAreAllCounted) {
  GrpcMetrics metrics;
  constexpr int kThreads = 4;
  constexpr int kCalls = 5000;
  const grpc::StatusCode codes[] = {grpc::StatusCode::OK, grpc::StatusCode::ABORTED,
                                    grpc::StatusCode::UNAVAILABLE};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, &codes, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string method =
            i % 2 == 0 ? "/derma.v1.DeviceControl/GetDevice" : "/derma.v1.DeviceControl/Configure";
        metrics.Record(method, codes[(i / 2 + t) % 3], 0.0001);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  double total = 0;
  for (const auto& [series, value] : Handled(metrics)) total += value;
  EXPECT_EQ(total, kThreads * kCalls);
  EXPECT_EQ(Handled(metrics).size(), 6u) << "two methods × three codes, each series made once";
  EXPECT_EQ(HandlingCount(metrics, "/derma.v1.DeviceControl/GetDevice") +
                HandlingCount(metrics, "/derma.v1.DeviceControl/Configure"),
            static_cast<uint64_t>(kThreads * kCalls));
}

}  // namespace
}  // namespace derma::metrics
