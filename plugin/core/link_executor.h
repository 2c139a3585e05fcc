// LinkExecutor: the one thread of a real link (a serial bus, a TCP connection), on which the
// strands of that link's devices run, so their blocking driver hooks never hold a gRPC thread,
// a simulated device or another link. Layer: plugin/core.
//
// Three priorities, each served only when the ones above are empty:
//   1. urgent tasks (ScheduleUrgent: emergency stops, a bus-wide stop broadcast),
//   2. normal tasks (Schedule: commands, and everything else posted to a device's strand),
//   3. polls (RequestPoll: a device's tick), one at a time, oldest request first.
// Polls coalesce: a poll requested for a device whose previous request has not run yet is
// dropped, so a link slower than the sample rate never builds a backlog; each device simply
// ticks less often (Device reports the rate it achieves). In back-to-back mode the executor
// polls its devices round-robin whenever nothing else waits, as fast as the link answers (for
// benchmarks and fast links); requests are then redundant.
// Thread-safe. The destructor drops the polls not yet run, runs every queued task, and joins.
#ifndef DERMA_PLUGIN_CORE_LINK_EXECUTOR_H_
#define DERMA_PLUGIN_CORE_LINK_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "plugin/core/executor.h"

namespace derma {

class LinkExecutor : public Executor {
 public:
  // `name` names the thread (for debuggers and logs; truncated to 15 characters).
  explicit LinkExecutor(std::string name, bool back_to_back = false);
  ~LinkExecutor() override;
  LinkExecutor(const LinkExecutor&) = delete;
  LinkExecutor& operator=(const LinkExecutor&) = delete;

  void Schedule(Task task) override;
  void ScheduleUrgent(Task task) override;

  // Setup only, before StartPolling: registers the poll of one device and returns its key.
  // `poll` runs on this executor's thread.
  uint32_t AddPoll(absl::AnyInvocable<void()> poll);
  // No poll runs before this (the devices are initialized first); requests wait meanwhile.
  void StartPolling();
  // Asks for one run of poll `key`; nothing when one is already requested and not yet run.
  void RequestPoll(uint32_t key);
  // Asks for a poll of `key` at wall-clock time `at` (a device's next deadline): it is
  // requested then, as RequestPoll does. Replaces the key's previous wake-up; InfiniteFuture
  // cancels it.
  void RequestPollAt(uint32_t key, absl::Time at);
  // Polls that ran, and requests dropped because one was still pending (for tests and metrics).
  uint64_t polls_run() const;
  uint64_t polls_coalesced() const;

 private:
  void Loop();
  // Requests the polls whose wake-up has come; returns the earliest one still to come.
  absl::Time RequestDuePolls(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bool back_to_back_;
  mutable absl::Mutex mu_;
  std::deque<Task> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> normal_ ABSL_GUARDED_BY(mu_);
  std::deque<uint32_t> poll_queue_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> wakeups_ ABSL_GUARDED_BY(mu_);  // per key; InfiniteFuture: none
  bool wakeups_changed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<bool> poll_pending_ ABSL_GUARDED_BY(mu_);
  // Appended during setup only; a deque keeps the elements in place as it grows.
  std::deque<absl::AnyInvocable<void()>> polls_ ABSL_GUARDED_BY(mu_);
  bool polling_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t next_round_robin_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t polls_run_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t polls_coalesced_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_LINK_EXECUTOR_H_
