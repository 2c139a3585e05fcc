// Table: the one result table derma_bench prints (metric, value, goal, PASS/FAIL), and the
// latency statistics and number formats its rows use. Part of tests/bench. Not thread-safe.
#ifndef DERMA_TESTS_BENCH_TABLE_H_
#define DERMA_TESTS_BENCH_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace derma::bench {

// p50 and p99 of a set of measured call latencies.
struct Percentiles {
  absl::Duration p50;
  absl::Duration p99;
  size_t count = 0;
};
// Nearest-rank percentiles. `latencies` must not be empty.
Percentiles ComputePercentiles(std::vector<absl::Duration> latencies);

// "48.3 µs", "1.24 ms".
std::string FormatLatency(absl::Duration d);
// "2.41 M", "512 k", "930".
std::string FormatCount(double n);
// "1,234,567".
std::string FormatInteger(uint64_t n);
// "1.13×".
std::string FormatRatio(double r);

class Table {
 public:
  // A row whose goal is checked: result PASS or FAIL.
  void AddGoal(std::string metric, std::string value, std::string goal, bool met);
  // A row without a goal (a baseline or context): result "-".
  void AddInfo(std::string metric, std::string value, std::string note = "-");
  void Print(std::ostream& out) const;

 private:
  struct Row {
    std::string metric;
    std::string value;
    std::string goal;
    std::string result;
  };
  std::vector<Row> rows_;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_TABLE_H_
