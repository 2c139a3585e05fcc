#include "tests/soak/call_tally.h"

#include <algorithm>
#include <cmath>
#include <iostream>

namespace derma::soak {

void LatencyHistogram::Add(absl::Duration latency) {
  const double us = std::max(1.0, absl::ToDoubleMicroseconds(latency));
  const int index = std::min(kBuckets - 1, static_cast<int>(std::log2(us) * kPerOctave));
  ++buckets_[index];
  ++count_;
  max_ = std::max(max_, latency);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

absl::Duration LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return absl::ZeroDuration();
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const double upper_us = std::exp2(static_cast<double>(i + 1) / kPerOctave);
      return std::min(max_, absl::Microseconds(upper_us));
    }
  }
  return max_;
}

void CallTally::Record(Rpc rpc, Verdict verdict, const grpc::Status& status,
                       absl::Duration latency) {
  RpcCounts& counts = counts_[static_cast<int>(rpc)];
  ++counts.calls;
  latency_[static_cast<int>(rpc)].Add(latency);
  switch (verdict) {
    case Verdict::kOk:
      ++counts.ok;
      return;
    case Verdict::kExpected:
      ++counts.expected;
      break;
    case Verdict::kDeadline:
      ++counts.deadline;
      break;
    case Verdict::kUnexpected:
      ++counts.unexpected;
      break;
  }
  ++errors_[{rpc, status.error_code(), ReasonOf(status), verdict}];
}

void CallTally::Merge(const CallTally& other) {
  for (int i = 0; i < kRpcCount; ++i) {
    counts_[i].calls += other.counts_[i].calls;
    counts_[i].ok += other.counts_[i].ok;
    counts_[i].expected += other.counts_[i].expected;
    counts_[i].deadline += other.counts_[i].deadline;
    counts_[i].unexpected += other.counts_[i].unexpected;
    latency_[i].Merge(other.latency_[i]);
  }
  for (const auto& [key, n] : other.errors_) errors_[key] += n;
}

uint64_t CallTally::CallsWithCode(Rpc rpc, grpc::StatusCode code) const {
  const RpcCounts& counts = counts_[static_cast<int>(rpc)];
  // An OK where an error was required is recorded as unexpected but is still an OK call.
  uint64_t n = code == grpc::StatusCode::OK ? counts.ok : 0;
  for (const auto& [key, count] : errors_) {
    if (key.rpc == rpc && key.code == code) n += count;
  }
  return n;
}

RpcCounts CallTally::Total() const {
  RpcCounts total;
  for (const RpcCounts& counts : counts_) {
    total.calls += counts.calls;
    total.ok += counts.ok;
    total.expected += counts.expected;
    total.deadline += counts.deadline;
    total.unexpected += counts.unexpected;
  }
  return total;
}

void FailureLog::Add(std::string what) {
  std::cerr << "derma_soak: FAILURE: " << what << "\n";
  absl::MutexLock lock(&mu_);
  ++count_;
  if (first_.size() < kKept) first_.push_back(std::move(what));
}

uint64_t FailureLog::count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

std::vector<std::string> FailureLog::first() const {
  absl::MutexLock lock(&mu_);
  return first_;
}

}  // namespace derma::soak
