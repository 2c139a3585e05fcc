#include "plugin/core/link_executor.h"

#include <pthread.h>

#include <utility>

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
      mu_.Await(absl::Condition(
          +[](LinkExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            const bool can_poll =
                self->polling_ && !self->stopping_ &&
                (!self->poll_queue_.empty() || (self->back_to_back_ && !self->polls_.empty()));
            return self->stopping_ || !self->urgent_.empty() || !self->normal_.empty() || can_poll;
          },
          this));
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
