#include "plugin/core/fleet_clock.h"

#include <algorithm>
#include <utility>

namespace derma {

RealTimeTicker::RealTimeTicker(const RealClock& clock, DeviceManager& devices,
                               absl::Duration period, PreTickHook pre_tick)
    : clock_(clock),
      devices_(devices),
      wall_period_(period / clock.speed_factor()),
      pre_tick_(std::move(pre_tick)) {}

RealTimeTicker::~RealTimeTicker() { Stop(); }

void RealTimeTicker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void RealTimeTicker::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
  // Let the round in flight finish: its tasks reference the devices.
  while (round_in_flight_.load()) absl::SleepFor(absl::Milliseconds(1));
}

void RealTimeTicker::Loop() {
  absl::Time next = absl::Now();
  while (!stop_.WaitForNotificationWithDeadline(next)) {
    next += wall_period_;
    if (round_in_flight_.exchange(true)) {
      overruns_.fetch_add(1);
      continue;
    }
    if (pre_tick_) pre_tick_(clock_.Now());
    devices_.TickAll([this] { round_in_flight_.store(false); });
    // After a long stall (debugger, suspended VM) do not burst to catch up.
    if (absl::Now() - next > 10 * wall_period_) next = absl::Now();
  }
}

VirtualTimeDriver::VirtualTimeDriver(VirtualClock& clock, DeviceManager& devices,
                                     absl::Duration period, PreTickHook pre_tick)
    : clock_(clock), devices_(devices), period_(period), pre_tick_(std::move(pre_tick)) {}

void VirtualTimeDriver::Advance(absl::Duration delta, AdvanceDone done) {
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back({std::max(delta, absl::ZeroDuration()), std::move(done)});
    if (queue_.size() > 1) return;  // the request in progress will get to it
  }
  Step();
}

// One step of the front request; continues from the TickAll completion, so no thread ever
// waits. The pre-tick hook and the clock are only touched from the step chain (serialised).
void VirtualTimeDriver::Step() {
  for (;;) {
    absl::Duration step;
    {
      absl::MutexLock lock(&mu_);
      Request& front = queue_.front();
      if (front.left <= absl::ZeroDuration()) {
        AdvanceDone done = std::move(front.done);
        queue_.pop_front();
        const bool more = !queue_.empty();
        mu_.Unlock();
        std::move(done)(clock_.Now());
        mu_.Lock();
        if (!more) return;
        continue;
      }
      step = std::min(period_, front.left);
      front.left -= step;
    }
    const absl::Time now = clock_.Advance(step);
    if (pre_tick_) pre_tick_(now);
    devices_.TickAll([this] { Step(); });
    return;
  }
}

absl::Time VirtualTimeDriver::AdvanceAndWait(absl::Duration delta) {
  absl::Notification finished;
  absl::Time result;
  Advance(delta, [&](absl::Time now) {
    result = now;
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

}  // namespace derma
