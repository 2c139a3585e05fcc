#include "plugin/audit/refusal_coalescer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace derma {

std::string RefusalCoalescer::PeerIp(absl::string_view grpc_peer) {
  absl::string_view rest = grpc_peer;
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    const size_t colon = rest.rfind(':');
    return std::string(colon == absl::string_view::npos ? rest : rest.substr(0, colon));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    if (absl::ConsumePrefix(&rest, "[")) {
      const size_t close = rest.find(']');
      return std::string(close == absl::string_view::npos ? rest : rest.substr(0, close));
    }
    return std::string(rest);
  }
  return std::string(grpc_peer);
}

std::optional<AuditEvent> RefusalCoalescer::Admit(AuditEvent refusal, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!interval_start_.has_value()) interval_start_ = now;
  // Whether the pair is tracked: a pair seen in this interval is in pairs_ (count 0 until its
  // second refusal), so its first refusal is written once per interval.
  auto key = std::make_pair(refusal.peer_ip, refusal.reason);
  auto it = pairs_.find(key);
  if (it == pairs_.end()) {
    if (pairs_.size() >= options_.max_pairs) {
      refusal.peer_ip = std::string(kOverflowPeer);
      overflow_.last = std::move(refusal);
      ++overflow_.count;
      return std::nullopt;
    }
    pairs_.emplace(std::move(key), Pending{});
    refusal.count = 1;
    return refusal;
  }
  it->second.last = std::move(refusal);
  ++it->second.count;
  return std::nullopt;
}

std::vector<AuditEvent> RefusalCoalescer::TakeLocked(absl::Time now) {
  std::vector<AuditEvent> records;
  for (auto& [key, pending] : pairs_) {
    if (pending.count == 0) continue;
    AuditEvent record = std::move(pending.last);
    record.count = pending.count;
    record.time_us = absl::ToUnixMicros(now);
    records.push_back(std::move(record));
  }
  if (overflow_.count > 0) {
    AuditEvent record = std::move(overflow_.last);
    record.count = overflow_.count;
    record.time_us = absl::ToUnixMicros(now);
    record.detail = absl::StrCat(
        "refusals of more than ", options_.max_pairs,
        " distinct (peer IP, reason) pairs in one interval; the last: ", record.detail);
    records.push_back(std::move(record));
  }
  pairs_.clear();
  overflow_ = Pending{};
  interval_start_.reset();
  return records;
}

std::vector<AuditEvent> RefusalCoalescer::TakeDue(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!interval_start_.has_value() || now < *interval_start_ + options_.interval) return {};
  return TakeLocked(now);
}

std::vector<AuditEvent> RefusalCoalescer::TakeAll(absl::Time now) {
  absl::MutexLock lock(&mu_);
  return TakeLocked(now);
}

absl::Time RefusalCoalescer::NextDue() const {
  absl::MutexLock lock(&mu_);
  if (!interval_start_.has_value()) return absl::InfiniteFuture();
  return *interval_start_ + options_.interval;
}

}  // namespace derma
