// RefusalCoalescer: bounds the audit records that refused calls (AUTH_FAILURE) produce, whatever
// traffic arrives. Refusals are grouped by (peer IP address, reason) per interval: the first
// refusal of a pair in an interval is written at once; the others are only counted, and at the
// interval's end (or at shutdown) each pair with further refusals yields one record whose count
// is their number. At most `max_pairs` pairs are tracked per interval; refusals of any further
// pair are counted together into one overflow record (peer_ip "*"). So an interval writes at
// most 2 × max_pairs + 1 records. Time is passed in by the caller (testable with a fake clock).
// Layer: plugin/audit. Thread-safe.
#ifndef DERMA_PLUGIN_AUDIT_REFUSAL_COALESCER_H_
#define DERMA_PLUGIN_AUDIT_REFUSAL_COALESCER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "plugin/audit/audit_event.h"

namespace derma {

struct RefusalCoalescingOptions {
  absl::Duration interval = absl::Seconds(10);
  // Distinct (peer IP, reason) pairs tracked per interval; beyond it, one overflow record.
  size_t max_pairs = 256;
};

class RefusalCoalescer {
 public:
  // peer_ip of the record standing for the refusals of pairs beyond max_pairs.
  static constexpr absl::string_view kOverflowPeer = "*";

  explicit RefusalCoalescer(RefusalCoalescingOptions options = {}) : options_(options) {}

  // Takes one refusal (`refusal.peer_ip` and `refusal.reason` set; count 1) at `now`. Returns
  // the record to write at once (the pair's first refusal in the interval), or nullopt when it
  // was only counted. Records of an interval that ended before `now` are not returned here:
  // TakeDue returns them.
  std::optional<AuditEvent> Admit(AuditEvent refusal, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // When the current interval has ended by `now`: the records of its counted refusals (one per
  // pair with count ≥ 1 further refusals, plus the overflow record), timed at `now`; the next
  // interval then starts at the next Admit. Empty otherwise.
  std::vector<AuditEvent> TakeDue(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Every counted refusal's record regardless of time (at shutdown), timed at `now`.
  std::vector<AuditEvent> TakeAll(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // When the current interval ends, or InfiniteFuture when nothing is counted.
  absl::Time NextDue() const ABSL_LOCKS_EXCLUDED(mu_);

  // The most records one interval can produce: what the write rate is bounded by.
  size_t MaxRecordsPerInterval() const { return 2 * options_.max_pairs + 1; }
  const RefusalCoalescingOptions& options() const { return options_; }

  // "127.0.0.1" for "ipv4:127.0.0.1:54321", "::1" for "ipv6:[::1]:5555", "unix:..." kept whole
  // (a socket has no port). Pure.
  static std::string PeerIp(absl::string_view grpc_peer);

 private:
  struct Pending {
    AuditEvent last;  // the newest counted refusal of the pair
    int64_t count = 0;
  };

  std::vector<AuditEvent> TakeLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RefusalCoalescingOptions options_;
  mutable absl::Mutex mu_;
  std::optional<absl::Time> interval_start_ ABSL_GUARDED_BY(mu_);
  // (peer IP, reason) → counted refusals beyond the first, in this interval.
  absl::flat_hash_map<std::pair<std::string, std::string>, Pending> pairs_ ABSL_GUARDED_BY(mu_);
  Pending overflow_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_REFUSAL_COALESCER_H_
