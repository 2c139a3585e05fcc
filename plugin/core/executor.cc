#include "plugin/core/executor.h"

#include <utility>

namespace derma {

ThreadPoolExecutor::ThreadPoolExecutor(size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ThreadPoolExecutor::Schedule(Task task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

void ThreadPoolExecutor::WorkerLoop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPoolExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, and every queued task has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

void ManualExecutor::Schedule(Task task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

size_t ManualExecutor::RunUntilIdle() {
  size_t ran = 0;
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return ran;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
    ++ran;
  }
}

void Strand::Post(Task task) { Enqueue(std::move(task), /*urgent=*/false); }
void Strand::PostUrgent(Task task) { Enqueue(std::move(task), /*urgent=*/true); }

void Strand::Enqueue(Task task, bool urgent) {
  {
    absl::MutexLock lock(&mu_);
    (urgent ? urgent_ : normal_).push_back(std::move(task));
    if (scheduled_) return;
    scheduled_ = true;
  }
  executor_.Schedule([this] { Drain(); });
}

// Runs a bounded batch so one busy device cannot starve the others, then yields the thread
// by rescheduling itself. The urgent lane is checked before every task.
void Strand::Drain() {
  constexpr int kBatch = 64;
  for (int i = 0; i < kBatch; ++i) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      std::deque<Task>& lane = urgent_.empty() ? normal_ : urgent_;
      if (lane.empty()) {
        scheduled_ = false;
        return;
      }
      task = std::move(lane.front());
      lane.pop_front();
    }
    std::move(task)();
  }
  executor_.Schedule([this] { Drain(); });
}

}  // namespace derma
