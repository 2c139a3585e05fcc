// DeviceSessions: what a soak client does with a device it leases. Each session acquires the
// lease (losing races to other clients is expected), does one of: a manual session (Configure,
// Start, Pause, live Configure, Resume), a short treatment program watched to its end
// (sometimes retried with the same request_id, sometimes cancelled), a deliberate out-of-range
// Configure, an emergency stop and reset, or a dead-man session whose 2 s lease runs out under
// a running program; then Stop and ReleaseLease. Responses are checked (states, the run's end
// and dose ledger, idempotent retries). Part of tests/soak. Not thread-safe: one per client.
#ifndef DERMA_TESTS_SOAK_DEVICE_SESSIONS_H_
#define DERMA_TESTS_SOAK_DEVICE_SESSIONS_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "tests/soak/rpc_caller.h"

namespace derma::soak {

struct SessionCounts {
  uint64_t sessions = 0;    // leases acquired
  uint64_t lease_held = 0;  // acquire lost to another holder
  uint64_t runs_started = 0;
  uint64_t runs_completed = 0;
  uint64_t runs_stopped = 0;  // ended by a contender's Stop
  uint64_t runs_cancelled = 0;
  uint64_t dead_man_stops = 0;   // ended LEASE_EXPIRED in a dead-man session
  uint64_t retries_checked = 0;  // Start / StartRun retried with the same request_id
  uint64_t watch_messages = 0;
  uint64_t estops = 0;
  // GetDevice right after WatchRun reported the end still showed the run (the view caught up
  // later), and the longest such lag.
  uint64_t stale_run_end_views = 0;
  absl::Duration max_stale_lag = absl::ZeroDuration();
  void Add(const SessionCounts& other);
};

class DeviceSessions {
 public:
  DeviceSessions(RpcCaller& caller, std::mt19937_64& random);

  // One leased session on `device` of a randomly chosen kind.
  void Run(const FleetDevice& device);
  const SessionCounts& counts() const { return counts_; }
  // Names of this client's most recent runs (newest last), for GetRun reads.
  const std::vector<std::string>& recent_runs() const { return recent_runs_; }

 private:
  std::optional<std::string> Acquire(const FleetDevice& device, double ttl_s);
  void Manual(const FleetDevice& device, const std::string& lease);
  // The calls of a manual session; false when the call failed (the session goes on to Stop).
  bool Configure(const FleetDevice& device, const std::string& lease);
  bool Start(const FleetDevice& device, const std::string& lease);
  void Renew(const FleetDevice& device, const std::string& lease, double ttl_s, Expect expect);
  bool PauseConfigureResume(const FleetDevice& device, const std::string& lease);
  void Program(const FleetDevice& device, const std::string& lease);
  void OutOfRange(const FleetDevice& device, const std::string& lease);
  void Estop(const FleetDevice& device, const std::string& lease);
  void DeadMan(const FleetDevice& device);
  void StopAndRelease(const FleetDevice& device, const std::string& lease);

  // Starts a run; the started run, or nullopt (recorded) when StartRun failed.
  std::optional<v1::Run> StartRun(const FleetDevice& device, const v1::StartRunRequest& request,
                                  Expect expect);
  // Watches the run to its end, calling CancelRun once at `cancel_at` if set. The last run
  // state received (ended when the stream closed OK). `cancelled` says whether CancelRun
  // succeeded.
  std::optional<v1::Run> Watch(const std::string& run, const std::string& lease,
                               std::optional<absl::Time> cancel_at, absl::Duration max_time,
                               bool* cancelled);
  // A WatchRun message after `last`: the same run, never going back, nothing after its end.
  void CheckProgress(const std::string& run, const std::optional<v1::Run>& last,
                     const v1::Run& now);
  // CancelRun; true when it ended the run.
  bool Cancel(const std::string& run, const std::string& lease);
  // Checks how the run ended and its ledger; counts the end.
  void CheckEnded(const v1::Run& run, bool cancelled, double dead_man_ttl_s);
  // After a run: GetRun agrees with the watched end, and the device is (or within a second
  // becomes) IDLE and owned by no run.
  void CheckAfterRun(const FleetDevice& device, const v1::Run& ended);
  void ExpectState(const v1::Device& device, v1::DeviceState state, const char* after);

  v1::Settings RandomSettings(const FleetDevice& device);
  std::vector<v1::RunStep> RandomProgram(const FleetDevice& device, int steps, double min_s,
                                         double max_s);
  std::string NextRequestId();
  void Think(int min_ms, int max_ms);

  RpcCaller& caller_;
  std::mt19937_64& random_;
  SessionCounts counts_;
  std::vector<std::string> recent_runs_;
  uint64_t request_counter_ = 0;
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_DEVICE_SESSIONS_H_
