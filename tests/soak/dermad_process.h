// DermadProcess: the real dermad binary as a child process of the soak test. Starts it on a free
// gRPC port (read back from its "port N" line) and a free metrics port, keeps its output (the
// last 64 KiB, for failure reports), reads its resident memory from /proc, notices when it
// dies, and stops it with SIGTERM. Part of tests/soak. Thread-safe.
#ifndef DERMA_TESTS_SOAK_DERMAD_PROCESS_H_
#define DERMA_TESTS_SOAK_DERMAD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace derma::soak {

struct DermadOptions {
  std::string binary;              // path to dermad
  std::string config;              // fleet config file
  std::vector<std::string> extra;  // more flags, e.g. "--audit_db=/tmp/x/audit.db"
  absl::Duration start_timeout = absl::Seconds(20);
};

// How the process ended.
struct DermadExit {
  bool exited = false;                                  // false: killed by a signal
  int code = 0;                                         // exit code, or the signal number
  absl::Duration after_sigterm = absl::ZeroDuration();  // SIGTERM to exit (Terminate only)
  std::string Describe() const;
};

class DermadProcess {
 public:
  // Starts dermad and waits for its port line. Retries twice with another metrics port when
  // the one picked was taken meanwhile (dermad exits 2).
  static absl::StatusOr<std::unique_ptr<DermadProcess>> Start(const DermadOptions& options);
  ~DermadProcess();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const;  // "127.0.0.1:PORT"
  const std::vector<std::string>& argv() const { return argv_; }

  // VmRSS from /proc/<pid>/status in bytes; an error once the process is gone.
  absl::StatusOr<uint64_t> ResidentBytes() const;
  // CPU time (user + system) dermad has used so far; an error once the process is gone.
  absl::StatusOr<absl::Duration> CpuTime() const;
  // The exit, once the process has ended (reaps it); nullopt while it runs.
  std::optional<DermadExit> Poll();
  // SIGTERM, then waits up to `timeout` for the exit. DEADLINE_EXCEEDED (and SIGKILL) when it
  // did not exit in time.
  absl::StatusOr<DermadExit> Terminate(absl::Duration timeout);
  // The last 64 KiB dermad wrote to stdout and stderr.
  std::string Output() const;

 private:
  DermadProcess() = default;
  static absl::StatusOr<std::unique_ptr<DermadProcess>> StartOnce(const DermadOptions& options);
  absl::Status Spawn(const DermadOptions& options);
  absl::Status WaitForPortLine(absl::Duration timeout);
  void Drain();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::vector<std::string> argv_;
  std::thread drain_thread_;

  mutable absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool output_closed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<DermadExit> exit_ ABSL_GUARDED_BY(mu_);
};

// A loopback TCP port that was free a moment ago (for dermad's metrics endpoint, which cannot
// report the port it picked).
absl::StatusOr<int> PickFreePort();

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_DERMAD_PROCESS_H_
