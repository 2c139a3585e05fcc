// ChildProcess: a program the tests start and stop — its stdout read line by line, its stdin a
// pipe that closes when the test ends (so a child that watches stdin dies with the test even if
// the test crashes). Thread-compatible.
#ifndef DERMA_TESTS_CONFORMANCE_CHILD_PROCESS_H_
#define DERMA_TESTS_CONFORMANCE_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace derma::testing {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv);
  ~ChildProcess();  // SIGTERM, then SIGKILL after 5 s; reaps it

  // The next line of stdout (without the newline), or nullopt at EOF or after `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout);
  // Reads lines until one starts with `prefix`; returns it, or nullopt.
  std::optional<std::string> WaitForLine(const std::string& prefix, absl::Duration timeout);
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, int stdin_fd, int stdout_fd)
      : pid_(pid), stdin_(stdin_fd), stdout_(stdout_fd) {}
  pid_t pid_;
  int stdin_;
  int stdout_;
  std::string buffer_;
};

}  // namespace derma::testing

#endif  // DERMA_TESTS_CONFORMANCE_CHILD_PROCESS_H_
