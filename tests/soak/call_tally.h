// What the soak's clients count: per RPC the calls, their outcomes (by verdict, code and
// ErrorInfo reason) and a latency histogram (CallTally, one per client thread, merged at the
// end), and the failures found on the way (FailureLog, shared). Part of tests/soak.
// CallTally is not thread-safe (one owner); FailureLog and LiveCounters are thread-safe.
#ifndef DERMA_TESTS_SOAK_CALL_TALLY_H_
#define DERMA_TESTS_SOAK_CALL_TALLY_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "tests/soak/expected_errors.h"

namespace derma::soak {

// Log-scale latency histogram: 16 buckets per doubling from 1 µs to about 9 minutes (≤ 4.4 %
// error per percentile).
class LatencyHistogram {
 public:
  void Add(absl::Duration latency);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  absl::Duration max() const { return max_; }
  // Upper edge of the bucket holding the q-quantile (0 < q ≤ 1); zero when empty.
  absl::Duration Quantile(double q) const;

 private:
  static constexpr int kPerOctave = 16;
  static constexpr int kBuckets = 29 * kPerOctave;
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  absl::Duration max_ = absl::ZeroDuration();
};

// One kind of non-OK outcome.
struct ErrorKey {
  Rpc rpc;
  grpc::StatusCode code;
  std::string reason;
  Verdict verdict;
  auto Tie() const { return std::tie(rpc, code, reason, verdict); }
  bool operator<(const ErrorKey& other) const { return Tie() < other.Tie(); }
};

struct RpcCounts {
  uint64_t calls = 0;
  uint64_t ok = 0;
  uint64_t expected = 0;
  uint64_t deadline = 0;
  uint64_t unexpected = 0;
};

class CallTally {
 public:
  void Record(Rpc rpc, Verdict verdict, const grpc::Status& status, absl::Duration latency);
  void Merge(const CallTally& other);

  const RpcCounts& counts(Rpc rpc) const { return counts_[static_cast<int>(rpc)]; }
  const LatencyHistogram& latency(Rpc rpc) const { return latency_[static_cast<int>(rpc)]; }
  const std::map<ErrorKey, uint64_t>& errors() const { return errors_; }
  // Calls of `rpc` that ended with `code` (OK included), as the server's metrics count them.
  uint64_t CallsWithCode(Rpc rpc, grpc::StatusCode code) const;
  RpcCounts Total() const;

 private:
  std::array<RpcCounts, kRpcCount> counts_{};
  std::array<LatencyHistogram, kRpcCount> latency_{};
  std::map<ErrorKey, uint64_t> errors_;
};

// Failures found by any client: kept (the first 50 in full) for the report and printed to
// stderr as they happen.
class FailureLog {
 public:
  void Add(std::string what);
  uint64_t count() const;
  std::vector<std::string> first() const;

 private:
  static constexpr size_t kKept = 50;
  mutable absl::Mutex mu_;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> first_ ABSL_GUARDED_BY(mu_);
};

// Running totals for the progress line while the soak runs.
struct LiveCounters {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> samples{0};
  std::atomic<uint64_t> dropped{0};
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_CALL_TALLY_H_
