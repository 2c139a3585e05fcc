// The metrics scrape: time to collect every device's metrics from the core's snapshots and
// encode them in Prometheus' text format with derma's encoder (what dermad's /metrics does per
// scrape, without HTTP), and the body size, for fleets of several sizes; and, for comparison,
// the same families encoded by prometheus-cpp's TextSerializer (what an embedding host's
// Exposer does). Part of tests/bench. Not thread-safe.
#ifndef DERMA_TESTS_BENCH_SCRAPE_H_
#define DERMA_TESTS_BENCH_SCRAPE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "tests/bench/table.h"

namespace derma::bench {

struct ScrapeResult {
  int devices = 0;
  Percentiles time;            // collect + encode, µs
  Percentiles collect;         // collect alone
  Percentiles exposer_encode;  // prometheus-cpp's TextSerializer on the same families
  size_t body_bytes = 0;
  size_t series = 0;
};

// Builds a fleet of each size (real clock, ticking), scrapes `scrapes` times.
absl::StatusOr<std::vector<ScrapeResult>> MeasureScrapes(const std::vector<int>& sizes,
                                                         int scrapes);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_SCRAPE_H_
