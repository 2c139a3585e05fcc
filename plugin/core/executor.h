// Executor and Strand: how device work is scheduled. Layer: plugin/core.
//
// An Executor runs tasks; ThreadPoolExecutor is a fixed pool of threads (the host creates
// one, sized to the cores), ManualExecutor runs tasks only when a test asks, so unit tests
// need no threads. A Strand serialises the tasks of one device on an Executor: its tasks never
// run concurrently, so the device core needs no lock for its own state. A Strand has an
// urgent lane (EmergencyStop) that runs before every task already queued in the normal lane.
#ifndef DERMA_PLUGIN_CORE_EXECUTOR_H_
#define DERMA_PLUGIN_CORE_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace derma {

using Task = absl::AnyInvocable<void() &&>;

class Executor {
 public:
  virtual ~Executor() = default;
  // Queues `task` to run once, on some thread of the executor. Thread-safe.
  virtual void Schedule(Task task) = 0;
  // Queues `task` ahead of every task queued with Schedule (behind other urgent ones): for
  // emergency stops, which must not wait behind a backlog of ticks. Thread-safe.
  virtual void ScheduleUrgent(Task task) { Schedule(std::move(task)); }
  // Queues every task of `tasks`, in order, as Schedule (or ScheduleUrgent) would one by one;
  // an executor may take its lock once for all of them. Thread-safe.
  virtual void ScheduleAll(std::vector<Task> tasks, bool urgent) {
    for (Task& task : tasks) urgent ? ScheduleUrgent(std::move(task)) : Schedule(std::move(task));
  }
};

// A fixed pool of worker threads sharing one FIFO queue. Thread-safe. The destructor runs
// every task already queued, then joins the threads.
class ThreadPoolExecutor : public Executor {
 public:
  // `threads` == 0 means std::thread::hardware_concurrency(). `nice` > 0 lowers the workers'
  // CPU priority by that much (Linux nice, per thread): for best-effort work (telemetry
  // encoding) that must not take the CPU from devices, commands and emergency stops.
  explicit ThreadPoolExecutor(size_t threads, int nice = 0);
  ~ThreadPoolExecutor() override;
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  void Schedule(Task task) override;
  void ScheduleUrgent(Task task) override;
  void ScheduleAll(std::vector<Task> tasks, bool urgent) override;
  size_t thread_count() const { return threads_.size(); }

 private:
  void WorkerLoop(int nice);

  absl::Mutex mu_;
  std::deque<Task> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Runs queued tasks only from RunUntilIdle(), on the calling thread. For unit tests.
// Thread-safe.
class ManualExecutor : public Executor {
 public:
  void Schedule(Task task) override;
  void ScheduleUrgent(Task task) override;
  // Runs tasks (including ones they schedule) until none is left; returns how many ran.
  size_t RunUntilIdle();

 private:
  absl::Mutex mu_;
  std::deque<Task> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
};

// Serialises tasks on an Executor. Thread-safe; the tasks themselves are strand-confined.
// The executor must outlive the strand, and the strand must outlive every task it queued on
// the executor: its own drain tasks may still run after the last posted task finished, so stop
// the executor (ThreadPoolExecutor's destructor) or run it idle before destroying the strand.
// Tasks run on the executor's threads, or on the caller's thread for Dispatch; either way never
// two at once.
class Strand {
 public:
  explicit Strand(Executor& executor) : executor_(executor) {}
  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  // Queues `task` behind every task already posted.
  void Post(Task task);
  // As Post / PostUrgent, but a drain task the strand needs scheduled is appended to `drains`
  // instead, for the caller to hand to Executor::ScheduleAll (with the same `urgent`) together
  // with other strands' drains: one executor lock for a whole fleet. Schedule them promptly.
  void PostDeferred(Task task, bool urgent, std::vector<Task>& drains);
  // Runs `task` on the calling thread, before returning, if the strand is idle (no task
  // running or queued; the strand is marked running meanwhile, so nothing else of it runs);
  // otherwise queues it as Post does. Saves a hand-off to an executor thread for the common
  // case of a command to an idle device. Call it with no lock held that a task may take.
  void Dispatch(Task task);
  // Queues `task` ahead of every task in the normal lane (after other urgent tasks), and
  // schedules the strand on the executor's urgent queue, so it also runs ahead of other
  // strands' queued work.
  void PostUrgent(Task task);

  // Runs `task` on the calling thread, before returning, if no task of the strand is running:
  // ahead of every queued task, as an urgent one would be; otherwise queues it as PostUrgent.
  // Call it with no lock held that a task may take.
  void DispatchUrgent(Task task);

  // For urgent work the caller runs on its own thread, ahead of every queued task (a fleet-wide
  // emergency stop): takes the strand and returns true when none of its tasks is running; no
  // task of the strand runs until Release. False when a task is running (post urgently then).
  // Call it with no lock held that a task may take.
  bool TryAcquire();
  // As TryAcquire, but only when the strand is idle: nothing running and nothing queued in
  // either lane (what Dispatch checks). For periodic work a caller runs on its own pool thread
  // in order with the strand's tasks (a fleet's tick): false means post it behind them.
  bool TryAcquireIdle();
  // Gives back a strand taken by TryAcquire. A drain for normal-lane tasks queued meanwhile is
  // appended to `drains` (for Executor::ScheduleAll, not urgent; schedule them promptly); one
  // for urgent tasks is scheduled on the executor's urgent queue at once.
  void Release(std::vector<Task>& drains);

 private:
  // Queues `task`; returns the drain task to schedule (on the urgent queue if `urgent`), if any.
  Task Enqueue(Task task, bool urgent);
  // One drain task: runs a batch of the strand's tasks unless another drain is running.
  void Drain(bool urgent);
  // After running tasks: clears running_ and schedules a drain if tasks are left and none is
  // queued to run them; a drain for the normal lane goes to `normal_drains` when given (the
  // caller schedules them together), one for the urgent lane is scheduled at once.
  void StopRunning(std::vector<Task>* normal_drains);

  Executor& executor_;
  absl::Mutex mu_;
  std::deque<Task> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> normal_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;    // a drain is executing tasks
  int pending_drains_ ABSL_GUARDED_BY(mu_) = 0;  // drain tasks queued on the executor
  bool urgent_drain_pending_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_EXECUTOR_H_
