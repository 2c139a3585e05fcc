#include "tests/bench/scrape.h"

#include <memory>

#include "absl/time/clock.h"
#include "plugin/host/plugin.h"
#include "plugin/metrics/fleet_collector.h"
#include "plugin/metrics/text_format.h"
#include "prometheus/text_serializer.h"
#include "tests/bench/fleets.h"

namespace derma::bench {

absl::StatusOr<std::vector<ScrapeResult>> MeasureScrapes(const std::vector<int>& sizes,
                                                         int scrapes) {
  std::vector<ScrapeResult> out;
  for (int size : sizes) {
    absl::StatusOr<std::unique_ptr<Plugin>> plugin =
        Plugin::Create(MakeFleet(size, /*virtual_clock=*/false));
    if (!plugin.ok()) return plugin.status();
    (*plugin)->Start();  // devices tick while they are scraped, as in production
    metrics::FleetCollector collector((*plugin)->fleet().devices(), (*plugin)->fleet().telemetry());
    const prometheus::TextSerializer serializer;
    ScrapeResult result;
    result.devices = size;
    std::vector<absl::Duration> times;
    std::vector<absl::Duration> collect_times;
    std::vector<absl::Duration> exposer_times;
    for (int i = 0; i < scrapes; ++i) {
      const absl::Time start = absl::Now();
      const std::vector<prometheus::MetricFamily> families = collector.Collect();
      collect_times.push_back(absl::Now() - start);
      std::string body;
      body.reserve(result.body_bytes + result.body_bytes / 8);  // as MetricsEndpoint does
      metrics::AppendTextFormat(families, body);
      times.push_back(absl::Now() - start);
      const absl::Time exposer_start = absl::Now();
      const std::string exposer_body = serializer.Serialize(families);
      exposer_times.push_back(absl::Now() - exposer_start);
      if (exposer_body != body) {
        return absl::InternalError("derma's text encoding differs from prometheus-cpp's");
      }
      result.body_bytes = body.size();
      result.series = 0;
      for (const prometheus::MetricFamily& family : families) {
        result.series += family.metric.size();
      }
    }
    result.time = ComputePercentiles(std::move(times));
    result.collect = ComputePercentiles(std::move(collect_times));
    result.exposer_encode = ComputePercentiles(std::move(exposer_times));
    (*plugin)->Shutdown();
    out.push_back(result);
  }
  return out;
}

}  // namespace derma::bench
