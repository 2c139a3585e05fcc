// Clock: the only source of device time. Layer: plugin/core.
// RealClock follows wall time (optionally sped up); VirtualClock moves only when advanced, so
// tests and CI runs are exact and never sleep. All clocks are thread-safe.
#ifndef DERMA_PLUGIN_CORE_CLOCK_H_
#define DERMA_PLUGIN_CORE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace derma {

class Clock {
 public:
  virtual ~Clock() = default;
  // Current device time. Never goes backwards. Thread-safe.
  virtual absl::Time Now() const = 0;
  // True for a clock that only moves when advanced.
  virtual bool IsVirtual() const = 0;
};

// Wall time scaled by `speed_factor` from the moment of construction. Thread-safe.
class RealClock : public Clock {
 public:
  explicit RealClock(double speed_factor = 1.0);
  absl::Time Now() const override;
  bool IsVirtual() const override { return false; }
  double speed_factor() const { return speed_factor_; }

 private:
  const double speed_factor_;
  const absl::Time start_;
};

// Time that moves only on Advance. Starts at a fixed epoch so runs are reproducible.
// Thread-safe.
class VirtualClock : public Clock {
 public:
  // 2026-01-01T00:00:00Z.
  static absl::Time DefaultEpoch();

  explicit VirtualClock(absl::Time start = DefaultEpoch());
  absl::Time Now() const override;
  bool IsVirtual() const override { return true; }
  // Moves time forward by `delta` (≥ 0) and returns the new time.
  absl::Time Advance(absl::Duration delta);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_CLOCK_H_
