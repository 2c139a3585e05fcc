// DurationHistogram: counts durations into fixed buckets, fine below a millisecond and coarse up
// to seconds, with the exact sum, for export as a Prometheus histogram (the metrics layer reads
// it at scrape time). Used for the emergency stop's time to the last output off and the audit
// trail's commit time. Layer: plugin/core. Thread-safe (relaxed atomics; a reader may see a
// count without its sum for an instant).
#ifndef DERMA_PLUGIN_CORE_DURATION_HISTOGRAM_H_
#define DERMA_PLUGIN_CORE_DURATION_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace derma {

class DurationHistogram {
 public:
  // Upper bounds (seconds, inclusive) of the buckets; +Inf is implied.
  static constexpr std::array<double, 18> kBounds = {
      0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005,
      0.01,    0.025,  0.05,   0.1,    0.25,   0.5,     1,     2.5,   10};
  // One more bucket than bounds: the last is +Inf.
  using Buckets = std::array<uint64_t, kBounds.size() + 1>;

  struct Totals {
    uint64_t count = 0;
    absl::Duration sum;  // exact to the nanosecond
  };

  void Observe(absl::Duration duration);

  // Per-bucket (not cumulative) counts.
  Buckets buckets() const;
  Totals totals() const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> nanos_sum_{0};
  std::atomic<uint64_t> count_{0};
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_DURATION_HISTOGRAM_H_
