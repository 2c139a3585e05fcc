#include "plugin/core/duration_histogram.h"

#include <algorithm>

namespace derma {

void DurationHistogram::Observe(absl::Duration duration) {
  const double seconds = absl::ToDoubleSeconds(duration);
  size_t bucket = 0;
  while (bucket < kBounds.size() && seconds > kBounds[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  const int64_t nanos = std::max<int64_t>(0, absl::ToInt64Nanoseconds(duration));
  nanos_sum_.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

DurationHistogram::Buckets DurationHistogram::buckets() const {
  Buckets out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

DurationHistogram::Totals DurationHistogram::totals() const {
  return {count_.load(std::memory_order_relaxed),
          absl::Nanoseconds(nanos_sum_.load(std::memory_order_relaxed))};
}

}  // namespace derma
