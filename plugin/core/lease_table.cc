#include "plugin/core/lease_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

ErrorMetadata DeviceMeta(const std::string& device) { return {{"device", device}}; }

}  // namespace

absl::Status LeaseTable::CheckTtl(absl::Duration ttl) const {
  if (ttl >= kMinTtl && ttl <= kMaxTtl) return absl::OkStatus();
  const std::string what = absl::StrFormat("%g s is outside 1–60 s", absl::ToDoubleSeconds(ttl));
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   "ttl_s: " + what, DeviceMeta(device_), {{"ttl_s", what}});
}

absl::StatusOr<LeaseGrant> LeaseTable::Acquire(const std::string& holder, absl::Duration ttl,
                                               absl::Time now) {
  std::vector<FieldViolation> violations;
  if (holder.empty() || holder.size() > 128) {
    violations.push_back({"holder", "must be 1–128 characters"});
  }
  if (absl::Status s = CheckTtl(ttl); !s.ok()) {
    violations.push_back(
        {"ttl_s", absl::StrFormat("%g s is outside 1–60 s", absl::ToDoubleSeconds(ttl))});
  }
  if (!violations.empty()) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrCat("AcquireLease on ", device_, ": ", violations[0].field, " ",
                                  violations[0].description),
                     DeviceMeta(device_), violations);
  }
  if (current_.has_value() && current_->expire_time > now) {
    return MakeError(absl::StatusCode::kAborted, v1::ERROR_REASON_LEASE_HELD,
                     absl::StrCat(device_, " is leased by \"", current_->holder, "\" until ",
                                  absl::FormatTime(current_->expire_time)),
                     {{"device", device_},
                      {"holder", current_->holder},
                      {"expire_time", absl::FormatTime(current_->expire_time)}});
  }
  current_ = LeaseGrant{absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(random_),
                                        absl::Uniform<uint64_t>(random_)),
                        holder, now + ttl};
  return *current_;
}

absl::StatusOr<LeaseGrant> LeaseTable::Renew(const std::string& lease_id, absl::Duration ttl,
                                             absl::Time now) {
  if (absl::Status s = Check(lease_id, now); !s.ok()) return s;
  if (absl::Status s = CheckTtl(ttl); !s.ok()) return s;
  current_->expire_time = now + ttl;
  return *current_;
}

absl::Status LeaseTable::Release(const std::string& lease_id, absl::Time now) {
  if (absl::Status s = Check(lease_id, now); !s.ok()) return s;
  current_.reset();
  return absl::OkStatus();
}

absl::Status LeaseTable::Check(const std::string& lease_id, absl::Time now) const {
  if (lease_id.empty()) {
    return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_LEASE_REQUIRED,
                     absl::StrCat("lease_id: this command on ", device_,
                                  " needs the device's lease (AcquireLease)"),
                     DeviceMeta(device_), {{"lease_id", "required"}});
  }
  if (current_.has_value() && current_->lease_id == lease_id && current_->expire_time > now) {
    return absl::OkStatus();
  }
  if (lease_id == last_expired_id_ || (current_.has_value() && current_->lease_id == lease_id)) {
    return MakeError(absl::StatusCode::kAborted, v1::ERROR_REASON_LEASE_EXPIRED,
                     absl::StrCat("the lease on ", device_, " expired; acquire a new one"),
                     DeviceMeta(device_));
  }
  return MakeError(absl::StatusCode::kAborted, v1::ERROR_REASON_LEASE_MISMATCH,
                   absl::StrCat("lease_id is not the current lease of ", device_),
                   DeviceMeta(device_));
}

std::optional<LeaseGrant> LeaseTable::ExpireIfDue(absl::Time now) {
  if (!current_.has_value() || current_->expire_time > now) return std::nullopt;
  std::optional<LeaseGrant> expired = std::move(current_);
  current_.reset();
  last_expired_id_ = expired->lease_id;
  return expired;
}

std::optional<absl::Time> LeaseTable::NextExpiry() const {
  if (!current_.has_value()) return std::nullopt;
  return current_->expire_time;
}

}  // namespace derma
