#include "plugin/core/device_counters.h"

#include <cmath>

namespace derma {

void DeviceCounters::CountFault(v1::FaultKind kind) {
  if (v1::FaultKind_IsValid(kind)) faults_[kind].fetch_add(1, std::memory_order_relaxed);
}

void DeviceCounters::ObserveRunDuration(double seconds) {
  size_t bucket = 0;
  while (bucket < kRunDurationBounds.size() && seconds > kRunDurationBounds[bucket]) ++bucket;
  run_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  run_micros_sum_.fetch_add(static_cast<uint64_t>(std::llround(std::max(0.0, seconds) * 1e6)),
                            std::memory_order_relaxed);
}

uint64_t DeviceCounters::faults(v1::FaultKind kind) const {
  return v1::FaultKind_IsValid(kind) ? faults_[kind].load(std::memory_order_relaxed) : 0;
}

DeviceCounters::RunBuckets DeviceCounters::run_buckets() const {
  RunBuckets out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = run_buckets_[i].load(std::memory_order_relaxed);
  return out;
}

double DeviceCounters::run_seconds_sum() const {
  return static_cast<double>(run_micros_sum_.load(std::memory_order_relaxed)) / 1e6;
}

}  // namespace derma
