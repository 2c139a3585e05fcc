#include "plugin/backends/modbus/link_metrics.h"

namespace derma::modbus {

const char* OutcomeLabel(RequestOutcome outcome) {
  switch (outcome) {
    case RequestOutcome::kOk:
      return "ok";
    case RequestOutcome::kTimeout:
      return "timeout";
    case RequestOutcome::kCrcError:
      return "crc_error";
    case RequestOutcome::kForeignReply:
      return "foreign_reply";
    case RequestOutcome::kException:
      return "exception";
    case RequestOutcome::kTransportError:
      return "transport_error";
    case RequestOutcome::kCount:
      break;
  }
  return "unknown";
}

void LinkMetrics::Record(RequestOutcome outcome, absl::Duration duration) {
  requests_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  const double seconds = absl::ToDoubleSeconds(duration);
  // Cumulative buckets, as Prometheus exposes them: one increment per bucket the value fits.
  for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
    if (seconds <= kLatencyBounds[i]) latency_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  latency_buckets_[kLatencyBounds.size()].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<uint64_t>(absl::ToInt64Microseconds(duration)),
                            std::memory_order_relaxed);
}

}  // namespace derma::modbus
