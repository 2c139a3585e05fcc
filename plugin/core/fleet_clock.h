// What makes device time pass for a fleet: RealTimeTicker ticks every device at the sample
// rate from a thread of its own; VirtualTimeDriver moves a VirtualClock forward only when
// asked, ticking every device at each sample period on the way, so simulated runs are exact
// and tests never sleep. Both call an optional pre-tick hook (scenario playback) with the time
// of each tick before the devices tick. Layer: plugin/core. Thread-safe.
#ifndef DERMA_PLUGIN_CORE_FLEET_CLOCK_H_
#define DERMA_PLUGIN_CORE_FLEET_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "plugin/core/clock.h"
#include "plugin/core/device_manager.h"

namespace derma {

using PreTickHook = absl::AnyInvocable<void(absl::Time)>;

class RealTimeTicker {
 public:
  // `period` is in device time; with a clock speed factor s the thread wakes every period/s.
  RealTimeTicker(const RealClock& clock, DeviceManager& devices, absl::Duration period,
                 PreTickHook pre_tick = nullptr);
  ~RealTimeTicker();  // stops
  void Start();
  // Stops ticking and waits for the last round to finish. Idempotent.
  void Stop();
  // Rounds skipped because the previous one had not finished (the fleet is overloaded).
  uint64_t overruns() const { return overruns_.load(); }

 private:
  void Loop();

  const RealClock& clock_;
  DeviceManager& devices_;
  const absl::Duration wall_period_;
  PreTickHook pre_tick_;
  std::atomic<bool> round_in_flight_{false};
  std::atomic<uint64_t> overruns_{0};
  absl::Notification stop_;
  std::thread thread_;
};

class VirtualTimeDriver {
 public:
  using AdvanceDone = absl::AnyInvocable<void(absl::Time) &&>;

  VirtualTimeDriver(VirtualClock& clock, DeviceManager& devices, absl::Duration period,
                    PreTickHook pre_tick = nullptr);

  // Advances the clock by `delta` in steps of one period (the last may be shorter), ticking
  // every device after each step; `done` gets the final time once every device has reached
  // it. Concurrent calls are queued and run one after another. Never blocks.
  void Advance(absl::Duration delta, AdvanceDone done);
  // Blocking form for hosts and tests (not from a strand or gRPC thread).
  absl::Time AdvanceAndWait(absl::Duration delta);

 private:
  struct Request {
    absl::Duration left;
    AdvanceDone done;
  };
  void Step();

  VirtualClock& clock_;
  DeviceManager& devices_;
  const absl::Duration period_;
  PreTickHook pre_tick_;
  absl::Mutex mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);  // front is in progress
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_FLEET_CLOCK_H_
