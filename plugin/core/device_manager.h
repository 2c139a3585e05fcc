// DeviceManager: the fleet. Owns every Device and its strand, resolves resource names, and
// posts work to device strands; fleet-wide operations (tick, emergency stop, shutdown) fan out
// to every strand and report completion once. Layer: plugin/core. Thread-safe after setup:
// AddDevice must all happen before the manager is shared with other threads.
#ifndef DERMA_PLUGIN_CORE_DEVICE_MANAGER_H_
#define DERMA_PLUGIN_CORE_DEVICE_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "plugin/core/device.h"
#include "plugin/core/executor.h"
#include "plugin/core/link_executor.h"

namespace derma {

using DeviceTask = absl::AnyInvocable<void(Device&) &&>;
using Done = absl::AnyInvocable<void() &&>;

class DeviceManager {
 public:
  DeviceManager(Executor& executor, DeviceContext context);
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  // Setup only. INVALID_FIELD for a duplicate id. `link` (optional, outliving the manager): the
  // device's strand runs on that link's thread instead of the pool, and its ticks are polls
  // there (coalesced, behind commands); a tick round does not wait for them. A driver on a link
  // runs every command on the link's thread, whatever it declares in hooks_never_block.
  absl::Status AddDevice(const std::string& id, std::unique_ptr<Driver> driver,
                         LinkExecutor* link = nullptr);
  // Setup only: runs on the calling thread at the start of every EmergencyStopAll, before any
  // device's stop is queued (a backend queues a bus-wide stop broadcast there).
  void set_before_emergency_stop_all(absl::AnyInvocable<void()> hook) {
    before_emergency_stop_all_ = std::move(hook);
  }
  // Connects every device (on its strand) and waits. Call once after the last AddDevice.
  void InitializeAll();

  // The longest valid names: "devices/" and an id of at most 63 characters (config_loader.cc),
  // and that followed by "/runs/" and a 12-digit run id. Longer ones are refused unread.
  static constexpr size_t kMaxDeviceNameBytes = 8 + 63;
  static constexpr size_t kMaxRunNameBytes = kMaxDeviceNameBytes + 6 + 12;

  size_t size() const { return entries_.size(); }
  // Index of "devices/{id}". INVALID_FIELD (naming `field`) for a malformed name or one longer
  // than kMaxDeviceNameBytes (which is not echoed), DEVICE_NOT_FOUND for an unknown one.
  absl::StatusOr<uint32_t> Find(absl::string_view name, absl::string_view field = "name") const;
  // Index of the device of run "devices/{id}/runs/{run}"; errors as Find.
  absl::StatusOr<uint32_t> FindRunDevice(absl::string_view run_name,
                                         absl::string_view field = "name") const;
  const DeviceView& view(uint32_t index) const { return entries_[index]->device.view(); }

  // Runs `task` on the device's strand, behind queued work / ahead of it.
  void Post(uint32_t index, DeviceTask task);
  void PostUrgent(uint32_t index, DeviceTask task);
  // PostUrgent, but on the calling thread now if the device's driver hooks never block and no
  // task of its strand is running (Strand::DispatchUrgent). Call it with no lock held.
  void DispatchUrgent(uint32_t index, DeviceTask task);
  // For commands: runs `task` on the calling thread now if the device's driver hooks never
  // block and its strand is idle (Strand::Dispatch), else as Post. Call it with no lock held.
  void Dispatch(uint32_t index, DeviceTask task);

  // Posts a tick to every device of the pool and asks every link for a poll of each of its
  // devices; `done` runs once the pool's devices have ticked (links poll at their own pace).
  void TickAll(Done done);
  // EmergencyStop on every device, ahead of everything queued, every output off first. On the
  // calling thread, the outputs of the devices whose driver hooks never block and whose strand
  // is not running a task go off one after another (Device::EmergencyStopOutputOff, with their
  // strands held); every other device stops in its strand's urgent lane. `outputs_off`
  // (optional) runs once every output is off, on whichever thread switched the last one off.
  // Then the calling thread finishes each held device's stop (Device::FinishEmergencyStop:
  // ESTOPPED latched, run ended, view and sample published) before releasing its strand.
  // `after_stop` (optional) runs for each device right after its stop is finished, before
  // anything else of that device runs, so what it reads is the stopped device; it runs
  // concurrently for different devices. `done` runs once every device's stop is finished.
  void EmergencyStopAll(Done done, absl::AnyInvocable<void(Device&) const> after_stop = nullptr,
                        Done outputs_off = nullptr);
  // Shutdown on every device; `done` runs once every output is off.
  void ShutdownAll(Done done);

  // Blocking helper for hosts and tests (never from a gRPC or strand thread): runs `fn` on the
  // device's strand and returns its result.
  template <typename Fn>
  auto Call(uint32_t index, Fn fn) -> decltype(fn(std::declval<Device&>())) {
    using Result = decltype(fn(std::declval<Device&>()));
    absl::Notification finished;
    std::optional<Result> result;
    Post(index, [&](Device& device) {
      result.emplace(fn(device));
      finished.Notify();
    });
    finished.WaitForNotification();
    return *std::move(result);
  }
  // Blocking fleet-wide wait, for hosts and tests.
  void Wait(absl::AnyInvocable<void(Done)> operation);

 private:
  struct Entry {
    Entry(Executor& executor, LinkExecutor* link_executor, uint32_t index, std::string id,
          std::unique_ptr<Driver> driver, DeviceContext context)
        : inline_commands(link_executor == nullptr && driver->Info().hooks_never_block),
          link(link_executor),
          strand(link_executor != nullptr ? *link_executor : executor),
          device(index, std::move(id), std::move(driver), context) {}
    const bool inline_commands;  // DriverInfo::hooks_never_block, and not on a link
    LinkExecutor* const link;    // null: the pool
    uint32_t poll_key = 0;       // the device's poll on `link`
    Strand strand;
    Device device;
  };
  // A device task as a strand task; on a link it then sets the device's next wake-up.
  Task Bind(Entry* entry, DeviceTask task);
  // Dispatch or DispatchUrgent on a device that runs commands inline, else Post or PostUrgent.
  void DispatchOrPost(uint32_t index, DeviceTask task, bool urgent);
  // Asks the device's link to poll it at its next deadline (Device::NextWakeup).
  void ScheduleWakeup(Entry& entry);
  // Devices left to finish in one fleet-wide operation, and what to call after the last.
  struct Countdown {
    std::atomic<size_t> left;
    Done done;
    void Finish(size_t finished) {
      if (finished > 0 && left.fetch_sub(finished) == finished) std::move(done)();
    }
  };
  // Runs `action` on every device, on its strand; `done` after the last.
  void ForEach(bool urgent, absl::AnyInvocable<void(Device&)> action, Done done);
  // Ticks the pool devices among entries_[begin, end): inline on this pool thread for each
  // idle strand of a driver that never blocks, otherwise posted to the strand.
  void TickChunk(const std::shared_ptr<Countdown>& round, size_t begin, size_t end);

  class FleetStop;  // one EmergencyStopAll's countdowns and callbacks
  // The devices whose outputs EmergencyStopAll switched off on its own thread, their strands
  // held, whose stops are still to finish: each taken once, by whichever thread comes first.
  struct HeldStops {
    HeldStops(std::vector<Entry*> held_devices, std::shared_ptr<FleetStop> fleet_stop)
        : held(std::move(held_devices)), stop(std::move(fleet_stop)) {}
    const std::vector<Entry*> held;
    std::atomic<size_t> next{0};
    const std::shared_ptr<FleetStop> stop;
  };
  // Finishes held stops (Device::FinishEmergencyStop, after_stop) and releases their strands
  // until none is left to take.
  void FinishHeld(HeldStops& share);

  Executor& executor_;
  DeviceContext context_;
  std::vector<std::unique_ptr<Entry>> entries_;
  size_t pool_devices_ = 0;  // entries not on a link
  absl::flat_hash_map<std::string, uint32_t> by_id_;
  absl::AnyInvocable<void()> before_emergency_stop_all_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_DEVICE_MANAGER_H_
