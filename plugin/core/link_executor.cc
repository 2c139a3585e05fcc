#include "plugin/core/link_executor.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace derma {

LinkExecutor::LinkExecutor(std::string name, bool back_to_back) : back_to_back_(back_to_back) {
  thread_ = std::thread([this] { Loop(); });
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

LinkExecutor::~LinkExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void LinkExecutor::Schedule(Task task) {
  absl::MutexLock lock(&mu_);
  normal_.push_back(std::move(task));
}

void LinkExecutor::ScheduleUrgent(Task task) {
  absl::MutexLock lock(&mu_);
  urgent_.push_back(std::move(task));
}

uint32_t LinkExecutor::AddPoll(absl::AnyInvocable<void()> poll) {
  absl::MutexLock lock(&mu_);
  polls_.push_back(std::move(poll));
  poll_pending_.push_back(false);
  wakeups_.push_back(absl::InfiniteFuture());
  return static_cast<uint32_t>(polls_.size() - 1);
}

void LinkExecutor::StartPolling() {
  absl::MutexLock lock(&mu_);
  polling_ = true;
}

void LinkExecutor::RequestPoll(uint32_t key) {
  absl::MutexLock lock(&mu_);
  if (poll_pending_[key]) {
    ++polls_coalesced_;
    return;
  }
  poll_pending_[key] = true;
  poll_queue_.push_back(key);
}

void LinkExecutor::RequestPollAt(uint32_t key, absl::Time at) {
  absl::MutexLock lock(&mu_);
  wakeups_[key] = at;
  wakeups_changed_ = true;
}

absl::Time LinkExecutor::RequestDuePolls(absl::Time now) {
  absl::Time earliest = absl::InfiniteFuture();
  for (uint32_t key = 0; key < wakeups_.size(); ++key) {
    if (wakeups_[key] <= now) {
      wakeups_[key] = absl::InfiniteFuture();
      if (!poll_pending_[key]) {
        poll_pending_[key] = true;
        poll_queue_.push_back(key);
      }
    } else {
      earliest = std::min(earliest, wakeups_[key]);
    }
  }
  return earliest;
}

uint64_t LinkExecutor::polls_run() const {
  absl::MutexLock lock(&mu_);
  return polls_run_;
}

uint64_t LinkExecutor::polls_coalesced() const {
  absl::MutexLock lock(&mu_);
  return polls_coalesced_;
}

void LinkExecutor::Loop() {
  for (;;) {
    Task task;
    absl::AnyInvocable<void()>* poll = nullptr;
    {
      absl::MutexLock lock(&mu_);
      const absl::Condition ready(
          +[](LinkExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            const bool can_poll =
                self->polling_ && !self->stopping_ &&
                (!self->poll_queue_.empty() || (self->back_to_back_ && !self->polls_.empty()));
            return self->stopping_ || !self->urgent_.empty() || !self->normal_.empty() ||
                   can_poll || self->wakeups_changed_;
          },
          this);
      // Sleeps until there is work or the earliest wake-up comes; a wake-up set meanwhile
      // wakes it to look again.
      for (;;) {
        wakeups_changed_ = false;
        const absl::Time next_wakeup =
            polling_ ? RequestDuePolls(absl::Now()) : absl::InfiniteFuture();
        if (mu_.AwaitWithDeadline(ready, next_wakeup) && !wakeups_changed_) break;
        if (!urgent_.empty() || !normal_.empty() || stopping_) break;
      }
      if (!urgent_.empty() || !normal_.empty()) {
        std::deque<Task>& lane = urgent_.empty() ? normal_ : urgent_;
        task = std::move(lane.front());
        lane.pop_front();
      } else if (stopping_) {
        return;  // every queued task has run; polls not yet run are dropped
      } else if (!poll_queue_.empty()) {
        const uint32_t key = poll_queue_.front();
        poll_queue_.pop_front();
        poll_pending_[key] = false;
        poll = &polls_[key];
        ++polls_run_;
      } else {
        poll = &polls_[next_round_robin_];
        next_round_robin_ = (next_round_robin_ + 1) % polls_.size();
        ++polls_run_;
      }
    }
    if (task) {
      std::move(task)();
    } else {
      (*poll)();
    }
  }
}

}  // namespace derma
