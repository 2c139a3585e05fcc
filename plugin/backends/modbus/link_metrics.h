// LinkMetrics: what one Modbus link counts — requests by outcome, reconnects, broadcasts, the
// transaction latency histogram and whether the link is up — as plain atomics the link's thread
// increments and a Prometheus scrape reads (LinkCollector, link_collector.h).
// Layer: plugin/backends/modbus. Thread-safe.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_LINK_METRICS_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_LINK_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace derma::modbus {

// How one try of a request ended.
enum class RequestOutcome {
  kOk,
  kTimeout,         // no reply within the response timeout
  kCrcError,        // RTU reply with a bad CRC
  kForeignReply,    // malformed, or for another request (unit, function, transaction or tag)
  kException,       // the device answered with a Modbus exception
  kTransportError,  // the connection closed or the serial device failed
  kCount,
};

// Label values of derma_modbus_requests_total{outcome}.
const char* OutcomeLabel(RequestOutcome outcome);

class LinkMetrics {
 public:
  // Upper bounds of the latency histogram, in seconds (the last bucket is +Inf).
  static constexpr std::array<double, 12> kLatencyBounds = {
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2};

  explicit LinkMetrics(std::string link) : link_(std::move(link)) {}

  // One try of a request and its duration (from sending to the reply or the timeout).
  void Record(RequestOutcome outcome, absl::Duration duration);
  void CountReconnect() { reconnects_.fetch_add(1, std::memory_order_relaxed); }
  void CountBroadcast() { broadcasts_.fetch_add(1, std::memory_order_relaxed); }
  void SetUp(bool up) { up_.store(up, std::memory_order_relaxed); }

  const std::string& link() const { return link_; }
  uint64_t requests(RequestOutcome outcome) const {
    return requests_[static_cast<size_t>(outcome)].load(std::memory_order_relaxed);
  }
  uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }
  uint64_t broadcasts() const { return broadcasts_.load(std::memory_order_relaxed); }
  bool up() const { return up_.load(std::memory_order_relaxed); }
  // Cumulative count of tries at or below kLatencyBounds[i] (i == size: all of them).
  uint64_t latency_bucket(size_t i) const {
    return latency_buckets_[i].load(std::memory_order_relaxed);
  }
  double latency_sum_s() const { return latency_sum_us_.load(std::memory_order_relaxed) * 1e-6; }

 private:
  const std::string link_;
  std::array<std::atomic<uint64_t>, static_cast<size_t>(RequestOutcome::kCount)> requests_{};
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> latency_buckets_{};
  std::atomic<uint64_t> latency_sum_us_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> broadcasts_{0};
  std::atomic<bool> up_{false};
};

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_LINK_METRICS_H_
