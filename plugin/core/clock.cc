#include "plugin/core/clock.h"

#include <algorithm>

namespace derma {

RealClock::RealClock(double speed_factor)
    : speed_factor_(speed_factor > 0 ? speed_factor : 1.0), start_(absl::Now()) {}

absl::Time RealClock::Now() const {
  if (speed_factor_ == 1.0) return absl::Now();
  return start_ + (absl::Now() - start_) * speed_factor_;
}

absl::Time VirtualClock::DefaultEpoch() { return absl::FromUnixSeconds(1767225600); }

VirtualClock::VirtualClock(absl::Time start) : now_(start) {}

absl::Time VirtualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

absl::Time VirtualClock::Advance(absl::Duration delta) {
  absl::MutexLock lock(&mu_);
  now_ += std::max(delta, absl::ZeroDuration());
  return now_;
}

}  // namespace derma
