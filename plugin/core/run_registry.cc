#include "plugin/core/run_registry.h"

#include <utility>

namespace derma {

bool RunEnded(const v1::Run& run) {
  return run.state() == v1::RUN_STATE_SUCCEEDED || run.state() == v1::RUN_STATE_ENDED_EARLY;
}

void RunRegistry::Publish(RunPtr run) {
  std::vector<std::shared_ptr<Watcher>> to_call;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = runs_.try_emplace(run->name(), run);
    if (inserted) {
      order_.push_back(run->name());
    } else {
      if (RunEnded(*it->second)) --ended_count_;
      it->second = run;
    }
    const bool ended = RunEnded(*run);
    if (ended) ++ended_count_;
    for (auto w = watchers_.begin(); w != watchers_.end();) {
      if (w->second.run != run->name()) {
        ++w;
        continue;
      }
      to_call.push_back(w->second.callback);
      if (ended) {
        watchers_.erase(w++);
      } else {
        ++w;
      }
    }
    // Forget the oldest ended runs beyond the bound; active runs are never forgotten.
    for (auto o = order_.begin(); ended_count_ > max_ended_runs_ && o != order_.end();) {
      auto found = runs_.find(*o);
      if (found != runs_.end() && RunEnded(*found->second)) {
        runs_.erase(found);
        --ended_count_;
        o = order_.erase(o);
      } else {
        ++o;
      }
    }
  }
  for (const auto& callback : to_call) (*callback)(run);
}

RunPtr RunRegistry::Get(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(name);
  return it == runs_.end() ? nullptr : it->second;
}

std::vector<RunPtr> RunRegistry::List(const std::string& device, size_t offset,
                                      size_t limit) const {
  std::vector<RunPtr> out;
  absl::MutexLock lock(&mu_);
  size_t skipped = 0;
  for (auto o = order_.rbegin(); o != order_.rend() && out.size() < limit; ++o) {
    const RunPtr& run = runs_.at(*o);
    if (!device.empty() && run->device() != device) continue;
    if (skipped++ < offset) continue;
    out.push_back(run);
  }
  return out;
}

uint64_t RunRegistry::Watch(const std::string& name, Watcher watcher) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(name);
  if (it == runs_.end() || RunEnded(*it->second)) return 0;
  const uint64_t id = next_watcher_id_++;
  watchers_[id] = {name, std::make_shared<Watcher>(std::move(watcher))};
  return id;
}

void RunRegistry::Unwatch(uint64_t id) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(id);
}

}  // namespace derma
