// LeaseTable: the one lease of one device (who may send mutating commands, until when).
// Layer: plugin/core. Strand-confined (owned by a Device).
//
// A lease is granted for a TTL of 1–60 s and must be renewed before it expires. The table
// never expires a lease by itself: the Device calls ExpireIfDue on every tick and command, so
// the dead-man switch (output off when the lease expires while RUNNING) fires exactly at the
// expiry time on the device clock.
#ifndef DERMA_PLUGIN_CORE_LEASE_TABLE_H_
#define DERMA_PLUGIN_CORE_LEASE_TABLE_H_

#include <optional>
#include <string>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace derma {

struct LeaseGrant {
  std::string lease_id;
  std::string holder;
  absl::Time expire_time;
};

class LeaseTable {
 public:
  static constexpr absl::Duration kMinTtl = absl::Seconds(1);
  static constexpr absl::Duration kMaxTtl = absl::Seconds(60);

  explicit LeaseTable(std::string device) : device_(std::move(device)) {}

  // Grants a new lease. INVALID_FIELD for a TTL outside 1–60 s or a holder that is empty or
  // longer than 128 characters; LEASE_HELD while another lease is live.
  absl::StatusOr<LeaseGrant> Acquire(const std::string& holder, absl::Duration ttl,
                                     absl::Time now);
  // Extends the current lease to now + ttl. Lease errors as Check.
  absl::StatusOr<LeaseGrant> Renew(const std::string& lease_id, absl::Duration ttl,
                                   absl::Time now);
  // Ends the current lease. Lease errors as Check.
  absl::Status Release(const std::string& lease_id, absl::Time now);
  // OK when `lease_id` is the live lease. LEASE_REQUIRED (empty id), LEASE_EXPIRED (the id of
  // the lease that expired last), LEASE_MISMATCH (anything else).
  absl::Status Check(const std::string& lease_id, absl::Time now) const;

  // Ends the lease if its expiry time is ≤ now; returns the expired grant once.
  std::optional<LeaseGrant> ExpireIfDue(absl::Time now);
  // Expiry time of the live lease, if any.
  std::optional<absl::Time> NextExpiry() const;
  // The live lease, if any.
  const std::optional<LeaseGrant>& current() const { return current_; }

 private:
  absl::Status CheckTtl(absl::Duration ttl) const;

  const std::string device_;
  std::optional<LeaseGrant> current_;
  std::string last_expired_id_;
  absl::BitGen random_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_LEASE_TABLE_H_
