// Unary latency: a bare gRPC Echo against derma's GetDevice and Configure, measured in
// interleaved blocks from one client thread so drift in the machine's load hits every method
// alike. Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_LATENCY_H_
#define DERMA_TESTS_BENCH_LATENCY_H_

#include <string>

#include "absl/status/statusor.h"
#include "tests/bench/table.h"

namespace derma::bench {

struct LatencyOptions {
  int calls = 2000;  // measured calls per method
  int warmup = 200;  // unmeasured calls per method first
  int block = 100;   // calls of one method before switching to the next
};

struct LatencyResult {
  Percentiles echo;
  Percentiles get_device;
  Percentiles configure;  // with a held lease, alternating two valid depths
};

// `pen` is a microneedling device ("devices/{id}") of the derma server at `derma_address`;
// the bench takes its lease for the measurement and releases it after.
absl::StatusOr<LatencyResult> MeasureLatency(const std::string& echo_address,
                                             const std::string& derma_address,
                                             const std::string& pen, const LatencyOptions& options);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_LATENCY_H_
