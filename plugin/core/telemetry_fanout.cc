#include "plugin/core/telemetry_fanout.h"

#include <algorithm>
#include <utility>

namespace derma {

TelemetrySubscription::TelemetrySubscription(SubscriptionOptions options)
    : options_(std::move(options)) {
  for (uint32_t index : options_.devices) {
    if (wanted_.size() <= index) wanted_.resize(index + 1, false);
    wanted_[index] = true;
  }
}

void TelemetrySubscription::SetWakeup(absl::AnyInvocable<void()> wakeup) {
  absl::MutexLock lock(&wakeup_mu_);
  wakeup_ = std::move(wakeup);
}

bool TelemetrySubscription::Wants(uint32_t device_index) const {
  if (options_.devices.empty()) return true;
  return device_index < wanted_.size() && wanted_[device_index];
}

void TelemetrySubscription::Notify(bool armed) {
  if (!armed) return;
  absl::MutexLock lock(&wakeup_mu_);
  if (wakeup_) wakeup_();
}

void TelemetrySubscription::Offer(const Sample& sample) {
  if (options_.events_only) return;
  bool armed = false;
  {
    absl::MutexLock lock(&mu_);
    if (options_.sample_interval > absl::ZeroDuration()) {
      auto [it, inserted] = last_forwarded_us_.try_emplace(sample.device_index, 0);
      if (!inserted && sample.device_time_us - it->second <
                           absl::ToInt64Microseconds(options_.sample_interval)) {
        return;
      }
      it->second = sample.device_time_us;
    }
    if (samples_.size() >= options_.sample_capacity) DropOldest();
    const size_t share = fanout_ != nullptr ? fanout_->FairShareIfOverBudget() : SIZE_MAX;
    while (held_samples() >= share && !samples_.empty()) DropOldest();
    if (held_samples() >= share) {
      // All it holds is taken by its consumer: the new sample is the one to drop.
      CountDrop(sample.device_index);
      return;
    }
    samples_.push_back({next_order_++, sample});
    AddHeld(1);
    armed = std::exchange(wakeup_armed_, false);
  }
  Notify(armed);
}

void TelemetrySubscription::DropOldest() {
  CountDrop(samples_.front().sample.device_index);
  samples_.pop_front();
  AddHeld(-1);
}

void TelemetrySubscription::CountDrop(uint32_t device_index) {
  ++dropped_[device_index];
  ++dropped_total_;
  if (fanout_ != nullptr) fanout_->dropped_total_.fetch_add(1, std::memory_order_relaxed);
}

// fanout_ changes only in Subscribe (before any offer or drain) and in Unsubscribe, which holds
// drain_mu_ and mu_ and runs after the fan-out stopped offering to this subscription.
void TelemetrySubscription::AddHeld(int64_t delta) {
  held_.fetch_add(delta, std::memory_order_relaxed);
  if (fanout_ != nullptr) fanout_->held_samples_.fetch_add(delta, std::memory_order_relaxed);
}

void TelemetrySubscription::OfferEvent(uint32_t device_index, EventPtr event) {
  bool armed = false;
  {
    absl::MutexLock lock(&mu_);
    if (events_.size() >= options_.event_capacity) {
      overflowed_ = true;  // never drop silently: the consumer ends the stream
    } else {
      events_.push_back({next_order_++, std::move(event)});
    }
    armed = std::exchange(wakeup_armed_, false);
  }
  Notify(armed);
}

// No O(n) work under mu_, which device strands take to offer: the queues are swapped out,
// and merged, copied and freed outside it.
TelemetryDrain TelemetrySubscription::Drain(size_t max_entries) {
  TelemetryDrain out;
  absl::MutexLock consumer(&drain_mu_);
  while (true) {
    if (out.entries.size() >= max_entries) {
      out.more = true;
      break;
    }
    if (taken_samples_.empty() && taken_events_.empty()) {
      const Take take = TakeQueued(/*first=*/out.entries.empty(), out.dropped);
      if (take == Take::kNothing) break;  // re-armed
      if (take == Take::kDropsWait) {
        out.more = true;
        break;
      }
    }
    TakeInOrder(max_entries, out.entries);
  }
  return out;
}

TelemetrySubscription::Take TelemetrySubscription::TakeQueued(
    bool first, absl::flat_hash_map<uint32_t, uint64_t>& dropped) {
  absl::MutexLock lock(&mu_);
  if (samples_.empty() && events_.empty()) {
    wakeup_armed_ = true;  // nothing left: the next offer wakes the consumer
    return Take::kNothing;
  }
  // Drops precede every entry now queued: they go out with the first entries of a Drain, so a
  // consumer never puts them before entries of the batch it took earlier.
  if (!first && !dropped_.empty()) return Take::kDropsWait;
  samples_.swap(taken_samples_);
  events_.swap(taken_events_);
  if (first) dropped.swap(dropped_);  // else dropped_ is empty
  return Take::kTaken;
}

void TelemetrySubscription::TakeInOrder(size_t max_entries, std::vector<TelemetryEntry>& out) {
  out.reserve(std::min(max_entries, out.size() + taken_samples_.size() + taken_events_.size()));
  int64_t samples_returned = 0;
  while (out.size() < max_entries && (!taken_samples_.empty() || !taken_events_.empty())) {
    const bool take_event =
        !taken_events_.empty() &&
        (taken_samples_.empty() || taken_events_.front().order < taken_samples_.front().order);
    if (take_event) {
      out.push_back({Sample{}, std::move(taken_events_.front().event)});
      taken_events_.pop_front();
    } else {
      out.push_back({taken_samples_.front().sample, nullptr});
      taken_samples_.pop_front();
      ++samples_returned;
    }
  }
  AddHeld(-samples_returned);
}

bool TelemetrySubscription::overflowed() const {
  absl::MutexLock lock(&mu_);
  return overflowed_;
}

uint64_t TelemetrySubscription::dropped_total() const {
  absl::MutexLock lock(&mu_);
  return dropped_total_;
}

std::shared_ptr<TelemetrySubscription> TelemetryFanout::Subscribe(SubscriptionOptions options) {
  auto subscription = std::make_shared<TelemetrySubscription>(std::move(options));
  subscription->fanout_ = this;
  absl::MutexLock lock(&mu_);
  subscriptions_.push_back(subscription);
  subscriber_count_.store(subscriptions_.size(), std::memory_order_release);
  if (!subscription->options_.events_only) sample_subscribers_.fetch_add(1);
  return subscription;
}

void TelemetryFanout::Unsubscribe(const TelemetrySubscription* subscription) {
  std::shared_ptr<TelemetrySubscription> removed;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                           [&](const auto& s) { return s.get() == subscription; });
    if (it == subscriptions_.end()) return;
    removed = std::move(*it);
    subscriptions_.erase(it);
    subscriber_count_.store(subscriptions_.size(), std::memory_order_release);
    if (!removed->options_.events_only) sample_subscribers_.fetch_sub(1);
  }
  // No device offers to it any more: what it still holds leaves the fan-out's count.
  absl::MutexLock consumer(&removed->drain_mu_);
  absl::MutexLock lock(&removed->mu_);
  held_samples_.fetch_sub(removed->held_.load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
  removed->fanout_ = nullptr;
}

size_t TelemetryFanout::FairShareIfOverBudget() const {
  if (sample_budget_ == 0 || held_samples() < sample_budget_) return SIZE_MAX;
  const size_t subscribers = std::max<size_t>(subscriber_count_.load(std::memory_order_relaxed), 1);
  return std::max(sample_budget_ / subscribers, kMinFairShare);
}

size_t TelemetryFanout::subscriber_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return subscriptions_.size();
}

// Without subscribers (for samples: without one that takes samples; the audit trail's takes
// only events) a publish takes no lock. A stream subscribes, then reads each device's view
// under its lock (the snapshot). A device publishes to its view under that lock, then reads the
// count: if its lock came after the snapshot's, it sees the stream counted; if before, the
// snapshot holds that sample (or reflects that event) and the stream skips it anyway. The
// audit trail subscribes once before any device starts, and again after an overflow, which it
// reports as a gap in the trail.
void TelemetryFanout::Publish(const Sample& sample) {
  if (sample_subscribers_.load(std::memory_order_acquire) == 0) return;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& subscription : subscriptions_) {
    if (subscription->Wants(sample.device_index)) subscription->Offer(sample);
  }
}

void TelemetryFanout::PublishEvent(uint32_t device_index, EventPtr event) {
  if (subscriber_count_.load(std::memory_order_acquire) == 0) return;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& subscription : subscriptions_) {
    if (subscription->Wants(device_index)) subscription->OfferEvent(device_index, event);
  }
}

}  // namespace derma
