// RunRegistry: every run the service knows (active and ended), readable from any thread, with
// watchers for progress. Devices publish immutable Run snapshots into it from their strands,
// each after the device's view (GetDevice) shows the change.
// Layer: plugin/core. Thread-safe.
//
// Keeps at most `max_ended_runs` ended runs in memory (oldest forgotten first); the audit store
// (a later layer) keeps the durable history.
#ifndef DERMA_PLUGIN_CORE_RUN_REGISTRY_H_
#define DERMA_PLUGIN_CORE_RUN_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "derma/v1/run.pb.h"

namespace derma {

using RunPtr = std::shared_ptr<const v1::Run>;

// True once the run has ended.
bool RunEnded(const v1::Run& run);

class RunRegistry {
 public:
  using Watcher = absl::AnyInvocable<void(const RunPtr&)>;

  explicit RunRegistry(size_t max_ended_runs = 10000) : max_ended_runs_(max_ended_runs) {}

  // Inserts or replaces the run with the same name and calls its watchers (outside the lock).
  // After an ended run is published its watchers are removed.
  void Publish(RunPtr run);
  // nullptr when unknown.
  RunPtr Get(const std::string& name) const;
  // Runs of `device` ("devices/{id}", or "" for all), newest first, skipping `offset`.
  std::vector<RunPtr> List(const std::string& device, size_t offset, size_t limit) const;
  // Calls `watcher` with every later snapshot of the run until it ends. Returns an id for
  // Unwatch, or 0 when the run is unknown or already ended (nothing will be called).
  uint64_t Watch(const std::string& name, Watcher watcher);
  void Unwatch(uint64_t id);

 private:
  struct WatcherEntry {
    std::string run;
    std::shared_ptr<Watcher> callback;
  };

  const size_t max_ended_runs_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, RunPtr> runs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // creation order, oldest first
  size_t ended_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, WatcherEntry> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watcher_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_RUN_REGISTRY_H_
