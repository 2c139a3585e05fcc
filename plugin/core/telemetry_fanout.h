// TelemetryFanout: delivers device samples and events to many subscribers without ever
// slowing a device. Layer: plugin/core. Thread-safe.
//
// Each subscription has a bounded sample queue: when a consumer falls behind, its OLDEST
// samples are dropped and counted per device, so the stream can tell the client how many it
// lost. Events (state changes, faults, run and lease events) are never dropped: they sit in a
// separate queue; if even that overflows (a consumer stalled for minutes) the subscription is
// marked `overflowed` and the stream must end with an error instead of losing an event
// silently. Publishing never blocks on a consumer: it takes one short lock per subscription,
// which a consumer holds only for O(1) work (a Drain swaps the queues out rather than copying
// them), and calls a wakeup that only flags and schedules.
//
// A process-wide sample budget bounds what every subscription together holds (a stalled
// reader would otherwise pin its whole queue, times the number of streams): while the samples
// held by all subscriptions reach the budget, a subscription holding more than its fair share
// (budget ÷ subscribers, at least kMinFairShare) drops its oldest queued samples, or the new
// one when all it holds is already taken by its consumer, down to that share. A reader that
// keeps up holds little and never reaches its share, so the stalled ones lose samples first.
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
  // Samples dropped per device index that no earlier Drain reported. Each drop is reported
  // once, by the Drain whose first entries are the first published after it (never by one
  // that also returns entries published before it).
  absl::flat_hash_map<uint32_t, uint64_t> dropped;
  // True when this Drain did not re-arm the wakeup: it stopped at max_entries, or before
  // entries that follow drops (they start the next Drain). The consumer must Drain again.
  bool more = false;
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
//
// Offers append to shared queues under a short lock. A Drain first serves the batch it took
// earlier (the consumer's side, under a lock no strand takes); when that is empty it swaps the
// shared queues out under the offer lock in O(1), then merges and copies outside it.
//
// Memory: a subscription pins at most `sample_capacity` samples and `event_capacity` events in
// its shared queues, plus at most as many again in the batch Drain took and has not returned
// yet: 2 × (sample_capacity + event_capacity) entries in all (events are shared pointers).
class TelemetryFanout;

class TelemetrySubscription {
 public:
  // Heap bytes of one queued sample (what the budget counts), deque overhead included.
  static constexpr size_t kBytesPerHeldSample = sizeof(Sample) + 2 * sizeof(uint64_t);

  explicit TelemetrySubscription(SubscriptionOptions options);

  // Called on the offering device's strand when an entry arrives while the wakeup is armed,
  // holding the lock that orders it against SetWakeup (and, from Publish, the fan-out's
  // subscriber list shared). It must only flag and schedule (DESIGN.md, Threads): never take
  // a lock that the consumer holds while it drains or encodes. Edge-triggered: armed at
  // construction and by every Drain that returns with `more` false (one that returns nothing
  // included); the first entry offered after that fires and disarms it.
  // SetWakeup(nullptr) returns once no wakeup is running.
  void SetWakeup(absl::AnyInvocable<void()> wakeup);
  // Takes up to `max_entries` entries in publish order, plus the drop counts. A Drain whose
  // `more` is false took everything queued and has re-armed the wakeup; one whose `more` is
  // true has not (it stopped at `max_entries`, or before entries that follow drops): the
  // consumer must Drain again (entries that arrive meanwhile fire no wakeup). Thread-safe,
  // though meant for one consumer.
  TelemetryDrain Drain(size_t max_entries);
  // True once the event queue overflowed; the consumer must end the stream.
  bool overflowed() const;
  // Samples dropped in total.
  uint64_t dropped_total() const;
  // Samples this subscription holds: queued, plus taken by a Drain and not yet returned.
  size_t held_samples() const { return held_.load(std::memory_order_relaxed); }
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
  // Drops the oldest queued sample, counting it.
  void DropOldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountDrop(uint32_t device_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `delta` to what this subscription and (until it unsubscribed) the fan-out hold.
  void AddHeld(int64_t delta);
  enum class Take { kNothing, kTaken, kDropsWait };
  // Swaps the shared queues into the (empty) taken ones and their drop counts into `dropped`
  // (kTaken). kNothing when the shared queues are empty (the wakeup is re-armed); kDropsWait,
  // taking nothing, when drops wait and this is not the Drain's `first` take.
  Take TakeQueued(bool first, absl::flat_hash_map<uint32_t, uint64_t>& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(drain_mu_);
  // Moves entries from the taken queues into `out`, in publish order, up to `max_entries`.
  void TakeInOrder(size_t max_entries, std::vector<TelemetryEntry>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(drain_mu_);

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
  TelemetryFanout* fanout_ = nullptr;  // set at Subscribe; null again once unsubscribed
  std::atomic<int64_t> held_{0};
  // The consumer's side: what Drain took from the shared queues and has not returned yet.
  // Only Drain takes drain_mu_ (before mu_), never a device strand.
  absl::Mutex drain_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::deque<QueuedSample> taken_samples_ ABSL_GUARDED_BY(drain_mu_);
  std::deque<QueuedEvent> taken_events_ ABSL_GUARDED_BY(drain_mu_);
  friend class TelemetryFanout;
  absl::Mutex wakeup_mu_;
  absl::AnyInvocable<void()> wakeup_ ABSL_GUARDED_BY(wakeup_mu_);
};

class TelemetryFanout {
 public:
  static constexpr size_t kMinFairShare = 1024;

  // The most samples all subscriptions may hold together before the fullest drop theirs
  // (0 = no budget, the default). Set before the first Subscribe.
  void set_sample_budget(size_t samples) { sample_budget_ = samples; }
  size_t sample_budget() const { return sample_budget_; }
  // Samples every subscription holds now (queued or taken and not returned).
  size_t held_samples() const {
    const int64_t held = held_samples_.load(std::memory_order_relaxed);
    return held > 0 ? static_cast<size_t>(held) : 0;
  }
  // While the budget is reached: the most a subscription may hold; otherwise SIZE_MAX.
  size_t FairShareIfOverBudget() const;

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
  size_t sample_budget_ = 0;
  std::atomic<int64_t> held_samples_{0};
  std::atomic<size_t> subscriber_count_{0};
  std::atomic<size_t> sample_subscribers_{0};  // subscriptions that are not events_only
  friend class TelemetrySubscription;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_TELEMETRY_FANOUT_H_
