// A Prometheus scrape as the soak does it: one HTTP/1.1 GET of /metrics over a plain socket
// (what a Prometheus server does, without a client library), and a small reader of the text
// exposition format for the values the soak cross-checks. Part of tests/soak. Thread-safe
// (no shared state).
#ifndef DERMA_TESTS_SOAK_METRICS_SCRAPE_H_
#define DERMA_TESTS_SOAK_METRICS_SCRAPE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace derma::soak {

// GET http://127.0.0.1:port/metrics. The body of a 200 response (chunked or not); an error for
// anything else, or when `timeout` passes.
absl::StatusOr<std::string> HttpGetMetrics(int port, absl::Duration timeout);

// One sample line of the text format: name{labels} value.
struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample line of a text-format body. INVALID_ARGUMENT naming the first line that does not
// parse.
absl::StatusOr<std::vector<Series>> ParseMetricsText(absl::string_view body);

// Sum of the values of `name` whose labels include every pair of `match`.
double SumOf(const std::vector<Series>& series, absl::string_view name,
             const std::map<std::string, std::string>& match = {});
// Number of series called `name`.
size_t CountOf(const std::vector<Series>& series, absl::string_view name);

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_METRICS_SCRAPE_H_
