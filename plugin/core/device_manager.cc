#include "plugin/core/device_manager.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma {

DeviceManager::DeviceManager(Executor& executor, DeviceContext context)
    : executor_(executor), context_(context) {}

absl::Status DeviceManager::AddDevice(const std::string& id, std::unique_ptr<Driver> driver,
                                      LinkExecutor* link) {
  const uint32_t index = static_cast<uint32_t>(entries_.size());
  if (!by_id_.emplace(id, index).second) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     "duplicate device id \"" + id + "\"", {{"device", "devices/" + id}});
  }
  auto entry = std::make_unique<Entry>(executor_, link, index, id, std::move(driver), context_);
  if (link != nullptr) {
    Entry* e = entry.get();
    // The poll runs on the link's thread, where the strand runs: through the strand all the
    // same, so it never overlaps a command (it runs inline, the link thread being idle).
    e->poll_key = link->AddPoll([this, e] {
      e->strand.Dispatch([this, e] {
        e->device.Tick();
        ScheduleWakeup(*e);
      });
    });
  }
  if (link == nullptr) ++pool_devices_;
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

void DeviceManager::InitializeAll() {
  Wait([this](Done done) {
    ForEach(/*urgent=*/false, [](Device& d) { d.Initialize(); }, std::move(done));
  });
}

namespace {

// Refuses a name longer than any valid one before it is looked up or echoed.
absl::Status NameTooLong(absl::string_view field, size_t bytes, absl::string_view kind) {
  const size_t most =
      kind == "run name" ? DeviceManager::kMaxRunNameBytes : DeviceManager::kMaxDeviceNameBytes;
  const std::string what =
      absl::StrCat("is ", bytes, " bytes long; a ", kind, " is at most ", most, " bytes");
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(field, ": ", what), {}, {{std::string(field), what}});
}

}  // namespace

absl::StatusOr<uint32_t> DeviceManager::Find(absl::string_view name,
                                             absl::string_view field) const {
  constexpr absl::string_view kPrefix = "devices/";
  if (name.size() > kMaxDeviceNameBytes) return NameTooLong(field, name.size(), "device name");
  if (!absl::StartsWith(name, kPrefix) || name.size() == kPrefix.size() ||
      absl::StrContains(name.substr(kPrefix.size()), '/')) {
    const std::string what = absl::StrCat("\"", name, "\" is not a device name devices/{id}");
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrCat(field, ": ", what), {}, {{std::string(field), what}});
  }
  auto it = by_id_.find(name.substr(kPrefix.size()));
  if (it == by_id_.end()) {
    return MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_DEVICE_NOT_FOUND,
                     absl::StrCat("no device named ", name), {{"device", std::string(name)}});
  }
  return it->second;
}

absl::StatusOr<uint32_t> DeviceManager::FindRunDevice(absl::string_view run_name,
                                                      absl::string_view field) const {
  if (run_name.size() > kMaxRunNameBytes) return NameTooLong(field, run_name.size(), "run name");
  const size_t runs = run_name.find("/runs/");
  if (runs == absl::string_view::npos || runs + 6 == run_name.size()) {
    const std::string what =
        absl::StrCat("\"", run_name, "\" is not a run name devices/{id}/runs/{run}");
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrCat(field, ": ", what), {}, {{std::string(field), what}});
  }
  return Find(run_name.substr(0, runs), field);
}

void DeviceManager::ScheduleWakeup(Entry& entry) {
  // Device time is the wall clock here: a fleet with devices on links runs on the real clock
  // at speed 1 (the Modbus backend refuses anything else).
  const std::optional<absl::Time> at = entry.device.NextWakeup();
  entry.link->RequestPollAt(entry.poll_key, at.value_or(absl::InfiniteFuture()));
}

Task DeviceManager::Bind(Entry* entry, DeviceTask task) {
  if (entry->link == nullptr) {
    return [entry, task = std::move(task)]() mutable { std::move(task)(entry->device); };
  }
  // On a link, whatever the task changed may move the device's next deadline.
  return [this, entry, task = std::move(task)]() mutable {
    std::move(task)(entry->device);
    ScheduleWakeup(*entry);
  };
}

void DeviceManager::Post(uint32_t index, DeviceTask task) {
  Entry* entry = entries_[index].get();
  entry->strand.Post(Bind(entry, std::move(task)));
}

void DeviceManager::Dispatch(uint32_t index, DeviceTask task) {
  DispatchOrPost(index, std::move(task), /*urgent=*/false);
}

void DeviceManager::PostUrgent(uint32_t index, DeviceTask task) {
  Entry* entry = entries_[index].get();
  entry->strand.PostUrgent(Bind(entry, std::move(task)));
}

void DeviceManager::DispatchUrgent(uint32_t index, DeviceTask task) {
  DispatchOrPost(index, std::move(task), /*urgent=*/true);
}

void DeviceManager::DispatchOrPost(uint32_t index, DeviceTask task, bool urgent) {
  Entry* entry = entries_[index].get();
  Task bound = Bind(entry, std::move(task));
  if (!entry->inline_commands) {
    urgent ? entry->strand.PostUrgent(std::move(bound)) : entry->strand.Post(std::move(bound));
  } else if (urgent) {
    entry->strand.DispatchUrgent(std::move(bound));
  } else {
    entry->strand.Dispatch(std::move(bound));
  }
}

void DeviceManager::ForEach(bool urgent, absl::AnyInvocable<void(Device&)> action, Done done) {
  if (entries_.empty()) {
    std::move(done)();
    return;
  }
  auto countdown = std::make_shared<Countdown>();
  countdown->left = entries_.size();
  countdown->done = std::move(done);
  auto shared_action = std::make_shared<absl::AnyInvocable<void(Device&)>>(std::move(action));
  // Every pool strand's drain goes to the executor in one batch: one lock and one wake-up for
  // the fleet instead of one per device.
  std::vector<Task> drains;
  drains.reserve(entries_.size());
  for (const std::unique_ptr<Entry>& entry : entries_) {
    Entry* e = entry.get();
    Task task = [this, e, countdown, shared_action] {
      (*shared_action)(e->device);
      if (e->link != nullptr) ScheduleWakeup(*e);
      countdown->Finish(1);
    };
    if (e->link == nullptr) {
      e->strand.PostDeferred(std::move(task), urgent, drains);
    } else if (urgent) {
      e->strand.PostUrgent(std::move(task));
    } else {
      e->strand.Post(std::move(task));
    }
  }
  executor_.ScheduleAll(std::move(drains), urgent);
}

namespace {

// Devices one tick task ticks: a few hundred microseconds of work, so the pool's threads share
// a round evenly and urgent work never waits long for a thread.
constexpr size_t kTickChunk = 256;

}  // namespace

// A tick is not a task per device: a few chunk tasks run the ticks of idle strands inline (no
// allocation, no executor lock per device) and post a tick behind a busy strand's work, or
// for a driver that may block.
void DeviceManager::TickAll(Done done) {
  for (const std::unique_ptr<Entry>& entry : entries_) {
    if (entry->link != nullptr) entry->link->RequestPoll(entry->poll_key);
  }
  if (pool_devices_ == 0) {
    std::move(done)();
    return;
  }
  auto round = std::make_shared<Countdown>();
  round->left = pool_devices_;
  round->done = std::move(done);
  std::vector<Task> chunks;
  chunks.reserve(entries_.size() / kTickChunk + 1);
  for (size_t begin = 0; begin < entries_.size(); begin += kTickChunk) {
    const size_t end = std::min(entries_.size(), begin + kTickChunk);
    chunks.push_back([this, round, begin, end] { TickChunk(round, begin, end); });
  }
  executor_.ScheduleAll(std::move(chunks), /*urgent=*/false);
}

void DeviceManager::TickChunk(const std::shared_ptr<Countdown>& round, size_t begin, size_t end) {
  std::vector<Task> drains;
  size_t ticked = 0;
  for (size_t i = begin; i < end; ++i) {
    Entry* e = entries_[i].get();
    if (e->link != nullptr) continue;
    // Only a driver whose hooks never block ticks inline: one that may block would hold up the
    // rest of the chunk.
    if (e->inline_commands && e->strand.TryAcquireIdle()) {
      e->device.Tick();
      e->strand.Release(drains);  // a command queued meanwhile gets its drain
      ++ticked;
    } else {
      e->strand.Post([e, round] {
        e->device.Tick();
        round->Finish(1);
      });
    }
  }
  if (!drains.empty()) executor_.ScheduleAll(std::move(drains), /*urgent=*/false);
  round->Finish(ticked);
}

namespace {

// Pool tasks offered to help finish the stops EmergencyStopAll holds.
constexpr int kStopHelpers = 2;

}  // namespace

// One fleet-wide emergency stop: counts outputs switched off and stops finished; the last of
// each runs its callback once.
class DeviceManager::FleetStop {
 public:
  FleetStop(size_t devices, Done outputs_off, Done done,
            absl::AnyInvocable<void(Device&) const> after_stop)
      : outputs_left_(devices),
        devices_left_(devices),
        outputs_off_(std::move(outputs_off)),
        done_(std::move(done)),
        after_stop_(std::move(after_stop)) {}

  void OutputsOff(size_t n) {
    if (n > 0 && outputs_left_.fetch_sub(n) == n && outputs_off_) std::move(outputs_off_)();
  }
  void Finish(Device& device) const {
    device.FinishEmergencyStop();
    if (after_stop_) after_stop_(device);
  }
  void Finished(size_t n) {
    if (n > 0 && devices_left_.fetch_sub(n) == n) std::move(done_)();
  }

 private:
  std::atomic<size_t> outputs_left_;
  std::atomic<size_t> devices_left_;
  Done outputs_off_;
  Done done_;
  const absl::AnyInvocable<void(Device&) const> after_stop_;
};

// Every output off before any device's bookkeeping, and on this thread where possible: the
// bookkeeping (ended runs, their events to every subscriber, views, samples) costs about ten
// times the driver's stop, and handing devices to the pool costs a wake-up per thread that the
// telemetry streams may be holding.
void DeviceManager::EmergencyStopAll(Done done, absl::AnyInvocable<void(Device&) const> after_stop,
                                     Done outputs_off) {
  if (before_emergency_stop_all_) before_emergency_stop_all_();
  if (entries_.empty()) {
    if (outputs_off) std::move(outputs_off)();
    std::move(done)();
    return;
  }
  auto stop = std::make_shared<FleetStop>(entries_.size(), std::move(outputs_off), std::move(done),
                                          std::move(after_stop));
  std::vector<Entry*> held;  // strands this thread holds, outputs off, stops to finish
  held.reserve(entries_.size());
  std::vector<Task> urgent_drains;
  for (const std::unique_ptr<Entry>& entry : entries_) {
    Entry* e = entry.get();
    if (e->inline_commands && e->strand.TryAcquire()) {
      e->device.EmergencyStopOutputOff();
      held.push_back(e);
      continue;
    }
    Task task = [this, e, stop] {
      e->device.EmergencyStopOutputOff();
      stop->OutputsOff(1);
      stop->Finish(e->device);
      if (e->link != nullptr) ScheduleWakeup(*e);
      stop->Finished(1);
    };
    if (e->link == nullptr) {
      e->strand.PostDeferred(std::move(task), /*urgent=*/true, urgent_drains);
    } else {
      e->strand.PostUrgent(std::move(task));
    }
  }
  stop->OutputsOff(held.size());
  // The held devices' bookkeeping is shared: pool threads that get to it help (urgently, ahead
  // of ticks), and this thread finishes whatever none has taken, so it never waits for them.
  auto share = std::make_shared<HeldStops>(std::move(held), stop);
  for (int i = 0; i < kStopHelpers; ++i) {
    urgent_drains.push_back([this, share] { FinishHeld(*share); });
  }
  executor_.ScheduleAll(std::move(urgent_drains), /*urgent=*/true);
  FinishHeld(*share);
}

void DeviceManager::FinishHeld(HeldStops& share) {
  std::vector<Task> drains;  // for what was queued behind the held strands
  size_t finished = 0;
  for (size_t i; (i = share.next.fetch_add(1)) < share.held.size(); ++finished) {
    Entry* e = share.held[i];
    share.stop->Finish(e->device);
    e->strand.Release(drains);
  }
  executor_.ScheduleAll(std::move(drains), /*urgent=*/false);
  share.stop->Finished(finished);
}

void DeviceManager::ShutdownAll(Done done) {
  ForEach(/*urgent=*/true, [](Device& d) { d.Shutdown(); }, std::move(done));
}

void DeviceManager::Wait(absl::AnyInvocable<void(Done)> operation) {
  absl::Notification finished;
  operation([&finished] { finished.Notify(); });
  finished.WaitForNotification();
}

}  // namespace derma
