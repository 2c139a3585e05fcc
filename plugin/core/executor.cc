#include "plugin/core/executor.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

namespace derma {

ThreadPoolExecutor::ThreadPoolExecutor(size_t threads, int nice) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this, nice] { WorkerLoop(nice); });
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

void ThreadPoolExecutor::ScheduleUrgent(Task task) {
  absl::MutexLock lock(&mu_);
  urgent_.push_back(std::move(task));
}

void ThreadPoolExecutor::ScheduleAll(std::vector<Task> tasks, bool urgent) {
  absl::MutexLock lock(&mu_);
  std::deque<Task>& lane = urgent ? urgent_ : queue_;
  for (Task& task : tasks) lane.push_back(std::move(task));
}

void ThreadPoolExecutor::WorkerLoop(int nice) {
  if (nice > 0) {
    // On Linux a nice value belongs to the thread. Lowering one's own priority needs no
    // privilege; if it fails anyway the thread just runs at the process's priority.
    const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
    setpriority(PRIO_PROCESS, tid, getpriority(PRIO_PROCESS, tid) + nice);
  }
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPoolExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty() || !self->urgent_.empty();
          },
          this));
      std::deque<Task>& lane = urgent_.empty() ? queue_ : urgent_;
      if (lane.empty()) return;  // stopping, and every queued task has run
      task = std::move(lane.front());
      lane.pop_front();
    }
    std::move(task)();
  }
}

void ManualExecutor::Schedule(Task task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

void ManualExecutor::ScheduleUrgent(Task task) {
  absl::MutexLock lock(&mu_);
  urgent_.push_back(std::move(task));
}

size_t ManualExecutor::RunUntilIdle() {
  size_t ran = 0;
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      std::deque<Task>& lane = urgent_.empty() ? queue_ : urgent_;
      if (lane.empty()) return ran;
      task = std::move(lane.front());
      lane.pop_front();
    }
    std::move(task)();
    ++ran;
  }
}

void Strand::Post(Task task) {
  if (Task drain = Enqueue(std::move(task), /*urgent=*/false)) executor_.Schedule(std::move(drain));
}

void Strand::PostUrgent(Task task) {
  if (Task drain = Enqueue(std::move(task), /*urgent=*/true)) {
    executor_.ScheduleUrgent(std::move(drain));
  }
}

void Strand::PostDeferred(Task task, bool urgent, std::vector<Task>& drains) {
  if (Task drain = Enqueue(std::move(task), urgent)) drains.push_back(std::move(drain));
}

Task Strand::Enqueue(Task task, bool urgent) {
  absl::MutexLock lock(&mu_);
  (urgent ? urgent_ : normal_).push_back(std::move(task));
  if (running_) return nullptr;  // the running drain picks it up
  if (urgent && !urgent_drain_pending_) {
    // Even if a normal drain is queued, it may sit behind other strands' work.
    urgent_drain_pending_ = true;
    ++pending_drains_;
    return [this] { Drain(/*urgent=*/true); };
  }
  if (urgent || pending_drains_ > 0) return nullptr;
  ++pending_drains_;
  return [this] { Drain(/*urgent=*/false); };
}

// Runs a bounded batch so one busy device cannot starve the others, then yields the thread
// by rescheduling itself. The urgent lane is checked before every task. Several drain tasks
// may be queued (a normal one and an urgent one); only one runs the strand's tasks at a time.
void Strand::Drain(bool urgent) {
  constexpr int kBatch = 64;
  {
    absl::MutexLock lock(&mu_);
    --pending_drains_;
    if (urgent) urgent_drain_pending_ = false;
    if (running_) return;  // another drain is running and will see the queued tasks
    running_ = true;
  }
  for (int i = 0; i < kBatch; ++i) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      std::deque<Task>& lane = urgent_.empty() ? normal_ : urgent_;
      if (lane.empty()) {
        running_ = false;
        return;
      }
      task = std::move(lane.front());
      lane.pop_front();
    }
    std::move(task)();
  }
  StopRunning(nullptr);
}

void Strand::Dispatch(Task task) {
  // A drain queued earlier then finds running_ set and leaves the strand to this call.
  if (!TryAcquireIdle()) {
    Post(std::move(task));  // queues behind the work found, whatever changed since
    return;
  }
  std::move(task)();
  StopRunning(nullptr);
}

void Strand::StopRunning(std::vector<Task>* normal_drains) {
  bool urgent = false;
  Task drain;
  {
    absl::MutexLock lock(&mu_);
    running_ = false;
    if (urgent_.empty() && normal_.empty()) return;
    if (!urgent_.empty() && !urgent_drain_pending_) {
      urgent_drain_pending_ = true;
      urgent = true;
    } else if (pending_drains_ > 0) {
      return;  // a queued drain will continue
    }
    ++pending_drains_;
    drain = [this, urgent] { Drain(urgent); };
  }
  if (urgent) {
    executor_.ScheduleUrgent(std::move(drain));
  } else if (normal_drains != nullptr) {
    normal_drains->push_back(std::move(drain));
  } else {
    executor_.Schedule(std::move(drain));
  }
}

void Strand::DispatchUrgent(Task task) {
  if (!TryAcquire()) {
    PostUrgent(std::move(task));  // if that task ends meanwhile, PostUrgent schedules a drain
    return;
  }
  std::move(task)();
  StopRunning(nullptr);
}

bool Strand::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (running_) return false;
  // A drain queued earlier then finds running_ set and leaves the strand to the caller.
  running_ = true;
  return true;
}

bool Strand::TryAcquireIdle() {
  absl::MutexLock lock(&mu_);
  if (running_ || !urgent_.empty() || !normal_.empty()) return false;
  running_ = true;
  return true;
}

void Strand::Release(std::vector<Task>& drains) { StopRunning(&drains); }

}  // namespace derma
