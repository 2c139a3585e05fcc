// DeviceCounters: monotonic event counts of one device, for the metrics exporter. The device
// increments them on its strand; scrapes read them from any thread. Layer: plugin/core.
// Thread-safe (relaxed atomics: each value is independent).
#ifndef DERMA_PLUGIN_CORE_DEVICE_COUNTERS_H_
#define DERMA_PLUGIN_CORE_DEVICE_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "derma/v1/device.pb.h"

namespace derma {

class DeviceCounters {
 public:
  // Upper bounds (seconds) of the run duration histogram buckets; +Inf is implied.
  static constexpr std::array<double, 10> kRunDurationBounds = {1,   10,  30,   60,   120,
                                                                300, 600, 1200, 1800, 3600};
  // One more bucket than bounds: the last is +Inf.
  using RunBuckets = std::array<uint64_t, kRunDurationBounds.size() + 1>;

  // A fault raised, by kind (UNSPECIFIED counts driver errors).
  void CountFault(v1::FaultKind kind);
  void CountEmergencyStop() { estops_.fetch_add(1, std::memory_order_relaxed); }
  void CountLeaseExpiration() { lease_expirations_.fetch_add(1, std::memory_order_relaxed); }
  // A lease expired while the device was RUNNING or PAUSED: the dead-man switch stopped it.
  void CountDeadManStop() { dead_man_stops_.fetch_add(1, std::memory_order_relaxed); }
  // An ended run that lasted `seconds` (start to end, device time).
  void ObserveRunDuration(double seconds);

  uint64_t faults(v1::FaultKind kind) const;
  uint64_t emergency_stops() const { return estops_.load(std::memory_order_relaxed); }
  uint64_t lease_expirations() const { return lease_expirations_.load(std::memory_order_relaxed); }
  uint64_t dead_man_stops() const { return dead_man_stops_.load(std::memory_order_relaxed); }
  // Per-bucket (not cumulative) counts, whose total is the number of ended runs, and the sum of
  // observed seconds.
  RunBuckets run_buckets() const;
  double run_seconds_sum() const;

 private:
  std::array<std::atomic<uint64_t>, v1::FaultKind_ARRAYSIZE> faults_{};
  std::atomic<uint64_t> estops_{0};
  std::atomic<uint64_t> lease_expirations_{0};
  std::atomic<uint64_t> dead_man_stops_{0};
  std::array<std::atomic<uint64_t>, kRunDurationBounds.size() + 1> run_buckets_{};
  std::atomic<uint64_t> run_micros_sum_{0};
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_DEVICE_COUNTERS_H_
