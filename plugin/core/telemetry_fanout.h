// TelemetryFanout: delivers device samples and events to many subscribers without ever
// slowing a device. Layer: plugin/core. Thread-safe.
//
// Each subscription has a bounded sample queue: when a consumer falls behind, its OLDEST
// samples are dropped and counted per device, so the stream can tell the client how many it
// lost. Events (state changes, faults, run and lease events) are never dropped: they sit in a
// separate queue; if even that overflows (a consumer stalled for minutes) the subscription is
// marked `overflowed` and the stream must end with an error instead of losing an event
// silently. Publishing never blocks on a consumer: it takes one short lock per subscription.
#ifndef DERMA_PLUGIN_CORE_TELEMETRY_FANOUT_H_
#define DERMA_PLUGIN_CORE_TELEMETRY_FANOUT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "plugin/core/sample.h"

namespace derma {

using EventPtr = std::shared_ptr<const v1::DeviceEvent>;

// One item of a subscription, in publish order: a sample, or an event when `event` is set.
struct TelemetryEntry {
  Sample sample;
  EventPtr event;
};

struct TelemetryDrain {
  std::vector<TelemetryEntry> entries;
  // Samples dropped per device index since the previous drain.
  absl::flat_hash_map<uint32_t, uint64_t> dropped;
};

struct SubscriptionOptions {
  std::vector<uint32_t> devices;                          // device indexes; empty = every device
  absl::Duration sample_interval = absl::ZeroDuration();  // 0 = every sample
  size_t sample_capacity = 16384;
  size_t event_capacity = 65536;
  // Only events (the audit trail's subscription): samples are not queued, nor counted dropped.
  bool events_only = false;
};

// One consumer's queues. Thread-safe: devices offer from their strands, the consumer drains.
class TelemetrySubscription {
 public:
  explicit TelemetrySubscription(SubscriptionOptions options);

  // Called (without locks held) when an entry arrives and the consumer had drained
  // everything. Edge-triggered: re-armed by a Drain that leaves the queue empty.
  void SetWakeup(absl::AnyInvocable<void()> wakeup);
  // Takes up to `max_entries` entries in publish order, plus the drop counts.
  TelemetryDrain Drain(size_t max_entries);
  // True once the event queue overflowed; the consumer must end the stream.
  bool overflowed() const;
  // Samples dropped in total.
  uint64_t dropped_total() const;
  bool Wants(uint32_t device_index) const;

  void Offer(const Sample& sample);
  void OfferEvent(uint32_t device_index, EventPtr event);

 private:
  struct QueuedSample {
    uint64_t order;
    Sample sample;
  };
  struct QueuedEvent {
    uint64_t order;
    EventPtr event;
  };
  void Notify(bool armed);

  const SubscriptionOptions options_;
  std::vector<bool> wanted_;  // indexed by device; empty = every device
  mutable absl::Mutex mu_;
  std::deque<QueuedSample> samples_ ABSL_GUARDED_BY(mu_);
  std::deque<QueuedEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, uint64_t> dropped_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, int64_t> last_forwarded_us_ ABSL_GUARDED_BY(mu_);
  uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool wakeup_armed_ ABSL_GUARDED_BY(mu_) = true;
  std::atomic<uint64_t>* fleet_dropped_ = nullptr;  // the fan-out's total, set at Subscribe
  friend class TelemetryFanout;
  absl::Mutex wakeup_mu_;
  absl::AnyInvocable<void()> wakeup_ ABSL_GUARDED_BY(wakeup_mu_);
};

class TelemetryFanout {
 public:
  std::shared_ptr<TelemetrySubscription> Subscribe(SubscriptionOptions options);
  void Unsubscribe(const TelemetrySubscription* subscription);
  size_t subscriber_count() const;
  // Samples dropped by every subscription so far (for metrics).
  uint64_t dropped_total() const { return dropped_total_.load(std::memory_order_relaxed); }

  // Called by device strands.
  void Publish(const Sample& sample);
  void PublishEvent(uint32_t device_index, EventPtr event);

 private:
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<TelemetrySubscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> dropped_total_{0};
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_TELEMETRY_FANOUT_H_
