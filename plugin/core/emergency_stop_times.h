// EmergencyStopTimes: how long each EmergencyStop took from the request reaching the server
// (the entry of its gRPC handler) to the last targeted output being off, before the response
// is built and before any audit record is written: the time that matters for safety. A
// histogram per scope (one device, all devices) with sub-millisecond buckets, exported by the
// metrics layer as derma_emergency_stop_duration_seconds{scope}. Layer: plugin/core.
// Thread-safe (relaxed atomics; a reader may see a count without its sum for an instant).
#ifndef DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_
#define DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace derma {

enum class StopScope { kDevice = 0, kAll = 1 };
inline constexpr int kStopScopes = 2;

// "device" or "all": the scope label's value.
const char* StopScopeLabel(StopScope scope);

class EmergencyStopTimes {
 public:
  // Upper bounds (seconds) of the histogram buckets; +Inf is implied. Fine below 1 ms (the
  // goal for a simulated fleet), coarse up to the 100 ms–1 s a stop takes over a slow bus.
  static constexpr std::array<double, 18> kBounds = {
      0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005,
      0.01,    0.025,  0.05,   0.1,    0.25,   0.5,     1,     2.5,   10};
  // One more bucket than bounds: the last is +Inf.
  using Buckets = std::array<uint64_t, kBounds.size() + 1>;

  struct Totals {
    uint64_t count = 0;
    absl::Duration sum;  // exact to the nanosecond
  };

  void Observe(StopScope scope, absl::Duration duration);

  // Per-bucket (not cumulative) counts.
  Buckets buckets(StopScope scope) const;
  Totals totals(StopScope scope) const;

 private:
  struct Series {
    std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};
    std::atomic<uint64_t> nanos_sum{0};
    std::atomic<uint64_t> count{0};
  };
  std::array<Series, kStopScopes> series_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_EMERGENCY_STOP_TIMES_H_
